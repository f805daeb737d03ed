package pep

import (
	"fmt"
	"strconv"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/xmpp"
)

// The node configuration fields the module knows (XEP-0060 §16.4.4), and
// the values it takes.
const (
	fieldAccess   = "pubsub#access_model"
	fieldMaxItems = "pubsub#max_items"
	fieldPersist  = "pubsub#persist_items"
	fieldPublish  = "pubsub#publish_model"
	fieldRetract  = "pubsub#notify_retract"
	fieldDelete   = "pubsub#notify_delete"
	fieldSendLast = "pubsub#send_last_published_item"
)

// accessModels are the access models the module enforces. "roster"
// (roster groups) and "authorize" are not among them: a node cannot be
// configured with them, and disco does not list them.
var accessModels = []string{"open", "presence", "whitelist"}

var sendLastValues = []string{"never", "on_sub", "on_sub_and_presence"}

// errForm is a form the module cannot take, with what is wrong.
type errForm string

func (e errForm) Error() string { return string(e) }

// formValues reads a data form (XEP-0004) into var → values, with its
// FORM_TYPE apart. A field given twice is a mistake.
func formValues(x *etree.Element) (formType string, vals map[string][]string, err error) {
	vals = map[string][]string{}
	for _, f := range x.SelectElements("field") {
		v := f.SelectAttrValue("var", "")
		if v == "" {
			return "", nil, errForm("a field without var")
		}
		if _, dup := vals[v]; dup {
			return "", nil, errForm("the field " + v + " is given twice")
		}
		var values []string
		for _, e := range f.SelectElements("value") {
			values = append(values, e.Text())
		}
		vals[v] = values
	}
	if t := vals["FORM_TYPE"]; len(t) == 1 {
		formType = t[0]
	}
	delete(vals, "FORM_TYPE")
	return formType, vals, nil
}

// one returns the single value of a field.
func one(field string, vs []string) (string, error) {
	if len(vs) != 1 {
		return "", errForm(fmt.Sprintf("the field %s needs one value, not %d", field, len(vs)))
	}
	return vs[0], nil
}

// parseBool reads an XEP-0004 boolean.
func parseBool(field, v string) (bool, error) {
	switch v {
	case "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return false, errForm(fmt.Sprintf("the field %s is a boolean, not %q", field, v))
}

// applyForm sets in c the fields of vals, each checked; an unknown field,
// or a value out of its range, is an errForm.
func applyForm(c *storage.PubsubConfig, vals map[string][]string) error {
	for field, vs := range vals {
		v, err := one(field, vs)
		if err != nil {
			return err
		}
		switch field {
		case fieldAccess:
			if !contains(accessModels, v) {
				return errForm("the access model " + v + " is not supported")
			}
			c.AccessModel = v
		case fieldMaxItems:
			if v == "max" {
				c.MaxItems = MaxItems
				break
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxItems {
				return errForm(fmt.Sprintf("max_items is 1 to %d or max, not %q", MaxItems, v))
			}
			c.MaxItems = n
		case fieldPersist:
			if c.PersistItems, err = parseBool(field, v); err != nil {
				return err
			}
		case fieldPublish:
			if v != "publishers" {
				return errForm("the publish model " + v + " is not supported: only the owner publishes")
			}
			c.PublishModel = v
		case fieldRetract:
			if c.NotifyRetract, err = parseBool(field, v); err != nil {
				return err
			}
		case fieldDelete:
			if c.NotifyDelete, err = parseBool(field, v); err != nil {
				return err
			}
		case fieldSendLast:
			if !contains(sendLastValues, v) {
				return errForm("send_last_published_item is never, on_sub or on_sub_and_presence, not " + v)
			}
			c.SendLast = v
		default:
			return errForm("the field " + field + " is not supported")
		}
	}
	return nil
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

// configForm renders c as the node configuration form (XEP-0060 §8.2.1).
func configForm(c storage.PubsubConfig) *etree.Element {
	x := xmpp.NewElementNS("jabber:x:data", "x")
	x.CreateAttr("type", "form")
	field := func(v, typ, label string, values []string, options []string) {
		f := x.CreateElement("field")
		f.CreateAttr("var", v)
		f.CreateAttr("type", typ)
		if label != "" {
			f.CreateAttr("label", label)
		}
		for _, o := range options {
			f.CreateElement("option").CreateElement("value").SetText(o)
		}
		for _, val := range values {
			f.CreateElement("value").SetText(val)
		}
	}
	b := func(v bool) []string { return []string{strconv.FormatBool(v)} }
	field("FORM_TYPE", "hidden", "", []string{NSNodeConfig}, nil)
	field(fieldAccess, "list-single", "Who may see the items", []string{c.AccessModel}, accessModels)
	field(fieldMaxItems, "text-single", "How many items are kept (1 to "+strconv.Itoa(MaxItems)+")", []string{strconv.Itoa(c.MaxItems)}, nil)
	field(fieldPersist, "boolean", "Keep items", b(c.PersistItems), nil)
	field(fieldPublish, "list-single", "Who may publish", []string{c.PublishModel}, []string{"publishers"})
	field(fieldRetract, "boolean", "Notify of retracted items", b(c.NotifyRetract), nil)
	field(fieldDelete, "boolean", "Notify of the node's deletion", b(c.NotifyDelete), nil)
	field(fieldSendLast, "list-single", "When to send the last item", []string{c.SendLast}, sendLastValues)
	return x
}

// preconditions returns the check of publish-options (XEP-0060 §7.1.5):
// each field must equal the existing node's. Fields are read and
// checked by applyForm first, so the comparison is of parsed values.
func preconditions(want storage.PubsubConfig, vals map[string][]string) func(storage.PubsubConfig) error {
	return func(have storage.PubsubConfig) error {
		for field := range vals {
			same := true
			switch field {
			case fieldAccess:
				same = have.AccessModel == want.AccessModel
			case fieldMaxItems:
				same = have.MaxItems == want.MaxItems
			case fieldPersist:
				same = have.PersistItems == want.PersistItems
			case fieldPublish:
				same = have.PublishModel == want.PublishModel
			case fieldRetract:
				same = have.NotifyRetract == want.NotifyRetract
			case fieldDelete:
				same = have.NotifyDelete == want.NotifyDelete
			case fieldSendLast:
				same = have.SendLast == want.SendLast
			}
			if !same {
				return errPrecondition(field)
			}
		}
		return nil
	}
}

// errPrecondition is a publish-option the node does not meet.
type errPrecondition string

func (e errPrecondition) Error() string {
	return "the node's " + string(e) + " differs from the publish-options"
}

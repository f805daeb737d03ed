package web_test

import "github.com/beevik/etree"

// outcome is "success", or the condition of a <failure/> (as in
// package server's SASL tests).
func outcome(el *etree.Element) string {
	if el.Tag == "failure" {
		for _, c := range el.ChildElements() {
			if c.Tag != "text" {
				return c.Tag
			}
		}
	}
	return el.Tag
}

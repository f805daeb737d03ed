package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/parley-im/parley/components/muc"
	"github.com/parley-im/parley/conf"
)

// withRooms adds a muc host, rooms.localhost (the -muc-domain default).
func withRooms(c *conf.Config) {
	c.Hosts = append(c.Hosts, conf.Host{Name: "rooms.localhost", Type: muc.HostType,
		Options: &muc.Options{RestrictRoomCreation: muc.CreateLocal, HistoryLength: 20}})
}

// TestMUCScenario runs the muc scenario against Parley's muc host: rooms
// are created as instant rooms, every occupant gets every message of its
// room once, and a service that is not there fails the run at the join.
func TestMUCScenario(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	tests := []struct {
		name     string
		args     []string
		wantCode int
		check    func(t *testing.T, res map[string]any)
	}{
		{"two_rooms_paced_lose_nothing", []string{"muc", "-rooms", "2", "-occupants", "3", "-occupant-rate", "20",
			"-duration", "1s", "-create", "-pid", pid}, 0, func(t *testing.T, res map[string]any) {
			sent, delivered := num(t, res, "sent"), num(t, res, "delivered")
			if sent == 0 || delivered != 3*sent || num(t, res, "expected") != 3*sent {
				t.Errorf("sent %v, delivered %v: want 3 deliveries a message", sent, delivered)
			}
			if num(t, res, "lost") != 0 || num(t, res, "duplicated") != 0 {
				t.Errorf("lost %v, duplicated %v", num(t, res, "lost"), num(t, res, "duplicated"))
			}
			if num(t, res, "latency.max_us") <= 0 || num(t, res, "deliveries_per_s") <= 0 {
				t.Errorf("no latency or rate: %v", res)
			}
			num(t, res, "deliveries_per_server_cpu_s")
		}},
		{"unpaced_window_two", []string{"muc", "-rooms", "1", "-occupants", "4", "-occupant-rate", "0", "-window", "2",
			"-duration", "500ms", "-create"}, 0, func(t *testing.T, res map[string]any) {
			if sent := num(t, res, "sent"); sent == 0 || num(t, res, "delivered") != 4*sent {
				t.Errorf("sent %v, delivered %v", sent, num(t, res, "delivered"))
			}
		}},
		{"no_such_service_fails_the_join", []string{"muc", "-rooms", "1", "-occupants", "2", "-muc-domain", "nowhere.localhost",
			"-duration", "200ms", "-step-timeout", "5s", "-create"}, 1, func(t *testing.T, res map[string]any) {
			if e, _ := res["error"].(string); !strings.Contains(e, "joining load0@nowhere.localhost/o0") {
				t.Errorf("error %q does not name the join", e)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, hook := startServer(t, withRooms)
			code, _, res := runTool(t, s, hook, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d (error %v)", code, tt.wantCode, res["error"])
			}
			if res["scenario"] != "muc" {
				t.Errorf("scenario = %v", res["scenario"])
			}
			tt.check(t, res)
			waitNoSessions(t, s)
		})
	}
}

// TestMUCReceive: what an occupant counts, stanza by stanza.
func TestMUCReceive(t *testing.T) {
	const room = "load0@rooms.localhost"
	msg := func(from, body, extra string) string {
		return "<message type='groupchat' from='" + from + "'><body>" + body + "</body>" + extra + "</message>"
	}
	now := strconv.FormatInt(int64(time.Since(epoch)), 10)
	tests := []struct {
		name                                    string
		in                                      []string
		delivered, duplicated, foreign, bounced int64
		window                                  int // tokens left in the occupant's window
	}{
		{"anothers_message", []string{msg(room+"/o1", "t"+now+" 0 x", "")}, 1, 0, 0, 0, 1},
		{"own_message_frees_the_window", []string{msg(room+"/o0", "t"+now+" 0 x", "")}, 1, 0, 0, 0, 0},
		{"a_second_copy_is_a_duplicate", []string{msg(room+"/o1", "t"+now+" 7 x", ""), msg(room+"/o1", "t"+now+" 7 x", "")}, 1, 1, 0, 0, 1},
		{"same_seq_other_sender", []string{msg(room+"/o1", "t"+now+" 7 x", ""), msg(room+"/o2", "t"+now+" 7 x", "")}, 2, 0, 0, 0, 1},
		{"a_large_seq_grows_the_set", []string{msg(room+"/o1", "t"+now+" 100000 x", ""), msg(room+"/o1", "t"+now+" 100000 x", "")}, 1, 1, 0, 0, 1},
		{"another_rooms", []string{msg("load1@rooms.localhost/o1", "t"+now+" 0 x", "")}, 0, 0, 1, 0, 1},
		{"history_is_foreign", []string{msg(room+"/o1", "t"+now+" 0 x", "<delay xmlns='urn:xmpp:delay' stamp='2020-01-01T00:00:00Z'/>")}, 0, 0, 1, 0, 1},
		{"not_ours", []string{msg(room+"/o1", "hello", "")}, 0, 0, 1, 0, 1},
		{"a_nick_past_the_room", []string{msg(room+"/o9", "t"+now+" 0 x", "")}, 0, 0, 1, 0, 1},
		{"subject_ignored", []string{"<message type='groupchat' from='" + room + "'><subject>hi</subject></message>"}, 0, 0, 0, 0, 1},
		{"an_error_frees_the_window", []string{"<message type='error' from='" + room + "'><error type='cancel'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"}, 0, 0, 0, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := &mucClient{room: &mucRoom{jid: room}, slot: 0, nick: "o0", win: make(chan struct{}, 4), seen: make([][]uint64, 3)}
			cl.win <- struct{}{} // one of its own in flight
			for _, raw := range tt.in {
				doc := etree.NewDocument()
				if err := doc.ReadFromString(raw); err != nil {
					t.Fatal(err)
				}
				cl.receive(doc.Root())
			}
			if got := [4]int64{cl.delivered.Load(), cl.duplicated.Load(), cl.foreign.Load(), cl.bounced.Load()}; got != [4]int64{tt.delivered, tt.duplicated, tt.foreign, tt.bounced} {
				t.Errorf("delivered, duplicated, foreign, bounced = %v, want %v", got, [4]int64{tt.delivered, tt.duplicated, tt.foreign, tt.bounced})
			}
			if len(cl.win) != tt.window {
				t.Errorf("window holds %d, want %d", len(cl.win), tt.window)
			}
		})
	}
}

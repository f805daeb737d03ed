package muc

import "github.com/parley-im/parley/xmpp"

// takeOccupancy counts one more occupant for the user bare and reports
// true, or reports false when bare is in max_user_rooms rooms already
// (each occupancy holds memory, and every message of its room costs a
// delivery to it: a user who could join without end could make the
// service work for nobody else).
func (s *Service) takeOccupancy(bare xmpp.JID) bool {
	s.occMu.Lock()
	defer s.occMu.Unlock()
	n := s.occupancies[bare]
	if s.opts.MaxUserRooms > 0 && n >= s.opts.MaxUserRooms {
		return false
	}
	if s.occupancies == nil {
		s.occupancies = map[xmpp.JID]int{}
	}
	s.occupancies[bare] = n + 1
	return true
}

// dropOccupancy counts one occupant less for bare.
func (s *Service) dropOccupancy(bare xmpp.JID) {
	s.occMu.Lock()
	defer s.occMu.Unlock()
	if n := s.occupancies[bare]; n > 1 {
		s.occupancies[bare] = n - 1
	} else {
		delete(s.occupancies, bare)
	}
}

// occupancyFull reports whether bare may join no further room.
func (s *Service) occupancyFull(bare xmpp.JID) bool {
	s.occMu.Lock()
	defer s.occMu.Unlock()
	return s.opts.MaxUserRooms > 0 && s.occupancies[bare] >= s.opts.MaxUserRooms
}

// dropAllOccupants empties the room (destroyed, or its creation
// cancelled); r.mu is held.
func (r *room) dropAllOccupants() {
	for _, o := range r.occupants {
		r.svc.dropOccupancy(o.bare)
	}
	r.occupants, r.byReal = map[string]*occupant{}, map[xmpp.JID]*session{}
}

// errTooManyRooms is the text of a join refused by max_user_rooms.
const errTooManyRooms = "you are in as many rooms of this service as one user may be (max_user_rooms)"

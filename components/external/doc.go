// Package external is the component host type: external components
// (XEP-0114, jabber:component:accept) such as slidge, Biboumi or
// matterbridge's XMPP gateway connect to the server's component port
// ([component] listen, loopback by default), name their domain in the
// stream header, prove the host's secret with the handshake
// (hex SHA-1 of the stream id and the secret, compared in constant
// time), and then send and receive their domain's stanzas.
//
// Behaviour, after Prosody's mod_component where XEP-0114 says nothing:
//
//   - A stream header to a domain that is no component host gets
//     <host-unknown/>, one with no to <improper-addressing/>, another
//     namespace <invalid-namespace/>; a wrong or malformed handshake
//     <not-authorized/>.
//   - Every stanza must have a from in the component's domain, or in a
//     subdomain of it that no other host of this server serves (issue
//     #16; XEP-0114 and Prosody allow the domain alone); anything else
//     ends the stream with <invalid-from/>, as Prosody does and as RFC
//     6120 §4.9.3.9 says for a from the stream was not authenticated
//     for. A stanza with no to gets a <bad-request/> stanza error.
//   - Stanzas to the domain go to its stream. Stanzas to a subdomain are
//     not: the router routes by the exact domain, and RFC 6120 treats a
//     subdomain as a domain of its own (configure it as a host of its
//     own to serve it).
//   - While no component is connected, iqs and messages to the domain
//     are bounced with <service-unavailable/>; presence is dropped.
//   - Wrong handshakes slow the guessing down and never lock the
//     component out (handshakes.go): past [limits] login_backoff_after
//     of them for a domain from one address, the answers to that
//     address's handshakes for it wait (1s, 2s, 4s... up to
//     login_backoff_max, right or wrong), and past
//     login_account_failures from anywhere, those of the addresses the
//     component never authenticated from do; a right handshake clears
//     its address's count. Prosody and ejabberd have no such limit.
//   - /metrics has parley_component_* (metrics.go): connected, stanzas
//     each way, handshakes by result, held answers, bounces and refused
//     connections by cause, each by host.
//   - A second connection for a domain that has one is refused with
//     <conflict/> (Prosody's default, kick_new); the host option
//     conflict = "replace" closes the old one with <conflict/> instead
//     (Prosody's kick_old), for a gateway whose old connection may be
//     dead without the server knowing yet.
//   - The component's stream is read with the server's XML reader and
//     the [limits] of server streams (s2s_stanza_size, max_depth,
//     max_attributes, rate and burst); what waits for the component is
//     bounded by queue_bytes, past which the sender gets
//     <resource-constraint/>, and a write that takes longer than 30 s
//     ends the stream: the router never waits for a component.
//   - At shutdown the stream is drained: what is queued is written, then
//     <system-shutdown/> and the closing tag; what the component still
//     sends before its own closing tag (3 s at most) is routed.
package external

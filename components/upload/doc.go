// Package upload is the upload host type: HTTP file upload (XEP-0363,
// urn:xmpp:http:upload:0) for the users of this server's local hosts.
//
// A [[host]] with type = "upload" is a domain (upload.example.com) that
// answers slot requests over XMPP and serves the files on the server's
// HTTP listener, under /upload/<slot>/<file name>:
//
//   - A user of an allowed host asks the domain for a slot (an iq get
//     with <request filename size content-type/>). The host checks the
//     size against max_file_size and the user's stored bytes against
//     quota_per_user, records the slot in the store and answers with a
//     PUT URL, an Authorization header and a GET URL. The slot's name is
//     128 random bits; the file name in the URL is cosmetic, checked to
//     be the slot's.
//   - The PUT must carry the header: a bearer token that is an
//     HMAC-SHA256, under the server's upload secret, of the slot's name,
//     owner, file name, size, content type and the token's expiry
//     (slot_lifetime after the request). The GET URL, which everyone the
//     user shares it with sees, holds the slot's name but not the token,
//     so only the requester can fill the slot; and a slot is filled once
//     (a second PUT gets 409). The body is written to a temporary file
//     in data_dir/uploads and renamed to the slot's name when complete.
//   - GET and HEAD serve the file with its stored Content-Type, ranges
//     and validators (http.ServeContent), and headers that keep a
//     browser from running it: nosniff, a CSP with default-src 'none',
//     and Content-Disposition: attachment for anything but images, audio
//     and video.
//   - A background task deletes files older than expires_after and
//     slots never filled.
//
// What is stored (slot metadata) goes through the [Store] interface,
// which *storage.Store implements.
package upload

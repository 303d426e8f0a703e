// Package ids owns tenant and timeline identifiers (design D6): 16 random
// bytes, written as 32 lowercase hexadecimal characters, as in Neon.
//
// Ids become directory names (<workdir>/tenants/<tenant_id>/timelines/
// <timeline_id>), so Parse accepts nothing but exactly 32 lowercase hex
// characters: no path separators, no dots, no upper case aliases of the same
// id.
//
// It does not know whether an id exists; that is the pageserver's business.
// Values are plain arrays, comparable and safe to share.
package ids

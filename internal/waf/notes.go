package waf

import "slices"

// NotesRules are the CRS rules that free text written by people trips.
// They detect command injection by looking for a command name after a
// shell separator (";", "&", "|", newline), and many Unix and Windows
// commands are ordinary English words. Contact-center agents write notes
// like "Order #1234; ping customer again tomorrow" all day. Each rule is
// listed with text that trips it under CRS 4.25 at the paranoia level
// given:
//
//	932230 PL1 "Check; id verified"                          (2-3 letter commands: id, who, ...)
//	932235 PL1 "Follow up; nice customer", "; sleep", "; find", "; look", "; sort", "; kill", "; echo", "; ping"
//	932250 PL1 "Check; id verified"                          (direct command execution)
//	932260 PL1 same family as 932250, other command list
//	932370 PL1 "Refund issued; print receipt"                (Windows commands: print, call, start, ...)
//	932380 PL1 same family as 932370
//	932236 PL2 "Customer upset; time on hold too long"       ("time", "set", "less", ...)
//	932340 PL1 "asked about delivery time, will call back"   (Unix command without arguments: "time", ...)
//
// The older reports of "time" followed by words (coreruleset issue #4214)
// and "; call back" no longer trip CRS 4.25 at PL1; the rules above cover
// both should they come back. At paranoia 2 and above some SQL injection
// heuristics also fire on prose ("order 55 or 56" trips 942390, a quoted
// "it doesn't work" trips 942370); they are not part of this set, because
// notes are stored in databases: add them per site if you run PL2.
//
// Everything else stays active on the notes fields: XSS, SQL injection
// (libinjection and the signature rules), path traversal, RFI, PHP and Java
// injection, Log4Shell, and the command-injection rules that need shell
// syntax rather than a word.
var NotesRules = []int{932230, 932235, 932236, 932250, 932260, 932340, 932370, 932380}

// NotesExclusions returns the exclusion of NotesRules from the given
// fields on requests under routePrefix. Fields are written as in an
// Exclusion: "ARGS:note" for a form or query field named note,
// "ARGS:json.note" for the note member of a JSON body, "XML:/*" for the
// text of an XML body. With no fields it returns nil: a notes exclusion is
// never route-wide.
func NotesExclusions(routePrefix string, fields ...string) []Exclusion {
	if len(fields) == 0 {
		return nil
	}
	return []Exclusion{{
		Rules:  slices.Clone(NotesRules),
		Routes: []string{routePrefix},
		Fields: slices.Clone(fields),
	}}
}

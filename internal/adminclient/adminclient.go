// Package adminclient is the client side of rampart's admin API, shared by
// the commands that talk to a running rampart (rampart bans, rampart cache).
package adminclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// DefaultURL is the admin listener's default address.
const DefaultURL = "http://127.0.0.1:9901"

// maxAnswer bounds an answer read from the admin API.
const maxAnswer = 16 << 20

// Client sends requests to one admin listener.
type Client struct {
	base string
	http *http.Client
}

// New returns a client of the admin API at base (e.g. http://127.0.0.1:9901).
func New(base string) *Client {
	return &Client{base: strings.TrimRight(base, "/"), http: &http.Client{Timeout: 10 * time.Second}}
}

// Do sends a request (body, when not nil, as JSON) and decodes a JSON
// answer into out (when not nil). A non-2xx answer becomes an error
// carrying the API's message.
func (c *Client) Do(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the admin API at %s: %w (is rampart running with admin.listen at that address? --admin URL names another)", c.base, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("admin API answered %s", resp.Status)
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

// SplitFlag takes a leading --admin URL (or --admin=URL) off args and
// returns the admin URL (DefaultURL when absent) and the rest.
func SplitFlag(args []string) (admin string, rest []string) {
	switch {
	case len(args) >= 2 && args[0] == "--admin":
		return args[1], args[2:]
	case len(args) >= 1 && strings.HasPrefix(args[0], "--admin="):
		return strings.TrimPrefix(args[0], "--admin="), args[1:]
	}
	return DefaultURL, args
}

// UsageError is a command line that does not parse: the command exits 2
// after printing it and its usage.
type UsageError string

func (e UsageError) Error() string { return string(e) }

// Command is a command-line tool of the admin API (rampart bans, rampart
// cache): its name, its usage text, and what it does with a subcommand.
type Command struct {
	Name  string
	Usage string
	// Run does the subcommand args[0] with its arguments, printing its
	// answer on stdout; a bad command line is a UsageError.
	Run func(c *Client, args []string, stdout io.Writer) error
}

// Main runs cmd with args (the words after its name; a leading name is
// accepted too) against the admin API at adminURL and returns the exit
// status: 0 done, 1 failed, 2 usage error.
func (cmd Command) Main(args []string, adminURL string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == cmd.Name {
		args = args[1:]
	}
	prefix := "rampart " + cmd.Name + ": "
	switch {
	case len(args) == 0:
		fmt.Fprint(stderr, cmd.Usage)
		return 2
	case args[0] == "help" || args[0] == "-h" || args[0] == "--help":
		fmt.Fprint(stdout, cmd.Usage)
		return 0
	case adminURL == "":
		fmt.Fprintln(stderr, prefix+"no admin API address")
		return 1
	}
	err := cmd.Run(New(adminURL), args, stdout)
	var usage UsageError
	switch {
	case errors.As(err, &usage):
		fmt.Fprintln(stderr, prefix+string(usage))
		fmt.Fprint(stderr, cmd.Usage)
		return 2
	case err != nil:
		fmt.Fprintln(stderr, prefix+err.Error())
		return 1
	}
	return 0
}

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"syscall"
)

// DropPrivileges switches the whole process (every thread; Go applies
// setuid and setgid to all threads on Linux) to userName and groupName:
// the supplementary groups become the user's groups, then the group, then
// the user. Both may be names or numeric ids; an empty groupName means the
// user's primary group. It refuses uid 0 and gid 0 as targets, and checks
// afterwards that root cannot be regained.
//
// Call it after everything that needs root is done: private keys read and
// listeners bound (server.New), log files opened. Reloads re-read the
// config and certificates as the new user, so they must be readable by it
// (e.g. root:rampart 0640).
//
// Already running as the target user and group is not an error.
func DropPrivileges(userName, groupName string) error {
	if userName == "" {
		return errors.New("drop privileges: no user given")
	}
	uid, primary, groups, err := lookupUser(userName)
	if err != nil {
		return err
	}
	gid := primary
	if groupName != "" {
		if gid, err = lookupGroup(groupName); err != nil {
			return err
		}
	}
	if uid == 0 {
		return fmt.Errorf("drop privileges: user %q is uid 0 (root); name an unprivileged user such as rampart", userName)
	}
	if gid == 0 {
		return fmt.Errorf("drop privileges: group %q is gid 0 (root); name an unprivileged group such as rampart", groupNameOr(groupName, userName))
	}
	if os.Geteuid() != 0 {
		if os.Getuid() == uid && os.Geteuid() == uid && os.Getgid() == gid && os.Getegid() == gid {
			return nil
		}
		return fmt.Errorf("drop privileges: switching to %s (uid %d, gid %d) needs root; running as uid %d", userName, uid, gid, os.Geteuid())
	}
	// Supplementary groups: the user's own (as login(1) would set them),
	// never root's.
	sup := []int{gid}
	for _, g := range groups {
		if g != 0 && !slices.Contains(sup, g) {
			sup = append(sup, g)
		}
	}
	if err := syscall.Setgroups(sup); err != nil {
		return fmt.Errorf("drop privileges: setgroups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("drop privileges: setgid %d: %w", gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("drop privileges: setuid %d: %w", uid, err)
	}
	if os.Getuid() != uid || os.Geteuid() != uid || os.Getgid() != gid || os.Getegid() != gid {
		return fmt.Errorf("drop privileges: ids are uid %d/%d gid %d/%d after the switch, want %d and %d",
			os.Getuid(), os.Geteuid(), os.Getgid(), os.Getegid(), uid, gid)
	}
	if err := syscall.Setuid(0); err == nil {
		return errors.New("drop privileges: root could be regained after setuid; refusing to run")
	}
	if err := syscall.Setgid(0); err == nil {
		return errors.New("drop privileges: gid 0 could be regained after setgid; refusing to run")
	}
	return nil
}

func groupNameOr(g, u string) string {
	if g != "" {
		return g
	}
	return u + "'s primary group"
}

// lookupUser resolves a user name or numeric uid (a number need not exist
// in /etc/passwd, as in a container).
func lookupUser(name string) (uid, gid int, groups []int, err error) {
	u, lerr := user.Lookup(name)
	if lerr != nil {
		n, nerr := strconv.Atoi(name)
		if nerr != nil {
			return 0, 0, nil, fmt.Errorf("drop privileges: unknown user %q: %w", name, lerr)
		}
		if u, lerr = user.LookupId(name); lerr != nil {
			// A bare uid: its group is the same number.
			if n < 0 {
				return 0, 0, nil, fmt.Errorf("drop privileges: bad uid %d", n)
			}
			return n, n, nil, nil
		}
	}
	if uid, err = strconv.Atoi(u.Uid); err != nil {
		return 0, 0, nil, fmt.Errorf("drop privileges: user %q has uid %q", name, u.Uid)
	}
	if gid, err = strconv.Atoi(u.Gid); err != nil {
		return 0, 0, nil, fmt.Errorf("drop privileges: user %q has gid %q", name, u.Gid)
	}
	ids, _ := u.GroupIds()
	for _, s := range ids {
		if g, err := strconv.Atoi(s); err == nil {
			groups = append(groups, g)
		}
	}
	return uid, gid, groups, nil
}

func lookupGroup(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		n, nerr := strconv.Atoi(name)
		if nerr != nil || n < 0 {
			return 0, fmt.Errorf("drop privileges: unknown group %q: %w", name, err)
		}
		return n, nil
	}
	return strconv.Atoi(g.Gid)
}

package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// SaveAttachments writes the persistent interfaces and attachments into the
// configuration file at path in place of the ones it has: every
// [[interface]] and [[attach]] table is removed and the new ones are
// appended; the rest of the file (other settings, comments) stays as it
// was. The file is replaced atomically. A missing file is created.
func SaveAttachments(path string, ifaces []Interface, attach []Attach) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("save attachments: %w", err)
	}
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	var b bytes.Buffer
	b.WriteString(strings.TrimRight(withoutTables(string(old), "interface", "attach"), "\n"))
	if b.Len() > 0 {
		b.WriteString("\n\n")
	}
	fmt.Fprintf(&b, "# Persistent interfaces and attachments, saved by valed at %s.\n", time.Now().UTC().Format(time.RFC3339))
	enc := toml.NewEncoder(&b)
	enc.Indent = ""
	if err := enc.Encode(struct {
		Interfaces []Interface `toml:"interface"`
		Attach     []Attach    `toml:"attach"`
	}{ifaces, attach}); err != nil {
		return fmt.Errorf("save attachments: %w", err)
	}
	if _, err := Parse(path, b.Bytes()); err != nil {
		return fmt.Errorf("save attachments: the result would not load: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".valed.toml.*")
	if err != nil {
		return fmt.Errorf("save attachments: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("save attachments: %w", err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("save attachments: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save attachments: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save attachments: %w", err)
	}
	return nil
}

// withoutTables removes the arrays of tables named from TOML text: from
// each "[[name]]" line to the next table header.
func withoutTables(text string, names ...string) string {
	var out []string
	skip := false
	for _, line := range strings.Split(text, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "[") {
			h := strings.TrimSpace(strings.Trim(strings.SplitN(t, "#", 2)[0], "[] \t"))
			skip = false
			if strings.HasPrefix(t, "[[") {
				for _, n := range names {
					if h == n {
						skip = true
					}
				}
			}
		}
		if strings.HasPrefix(t, "# Persistent interfaces and attachments, saved by valed") {
			continue
		}
		if !skip {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

package config

// Line returns the line of the value at a key path such as ("sites", 0,
// "routes", 2, "regex"), or of its deepest ancestor written in the file
// when the key itself is absent (a default). It is 0 for a config not read
// from YAML.
func (c *Config) Line(path ...any) int { return c.pos.line(path...) }

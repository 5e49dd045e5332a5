// Package config reads padlock's one YAML configuration file strictly:
// unknown keys and values of the wrong type are errors that name the key
// ("detect.netscan.window: ..."), and every section is validated by the
// package that owns it. It assembles the sections of all components and
// imports them; nothing but cmd/padlock imports config.
package config

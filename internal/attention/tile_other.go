//go:build !amd64 || purego

package attention

// asmPaths is empty off amd64 and with the purego tag: the pure-Go loops run.
func asmPaths() []string { return nil }

// useAsm is a no-op without the assembly loops.
func useAsm(string) {}

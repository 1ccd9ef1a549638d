//go:build !amd64 || purego

package attention

// hasAVX2 is false off amd64 and with the purego tag: the pure-Go loops run.
const hasAVX2 = false

// useAsm is a no-op without the assembly loops.
func useAsm(bool) {}

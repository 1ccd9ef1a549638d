package cuda

import (
	"fmt"
	"math"
	"runtime"
	"unsafe"
)

// Buffer is a range of device memory: an address and a size in bytes. The zero Buffer is "none"
// (an absent optional input, or a gradient not wanted). Buffers are values; Slice makes views.
type Buffer struct {
	ptr   uint64
	bytes int
}

// Ptr returns the device address.
func (b Buffer) Ptr() uint64 { return b.ptr }

// Bytes returns the size in bytes.
func (b Buffer) Bytes() int { return b.bytes }

// Nil reports whether b is the zero Buffer.
func (b Buffer) Nil() bool { return b.ptr == 0 }

// Len32 returns the number of 4-byte elements (float32, int32) that fit in b.
func (b Buffer) Len32() int { return b.bytes / 4 }

// Slice returns the view of bytes [lo, hi) of b.
func (b Buffer) Slice(lo, hi int) Buffer {
	if lo < 0 || hi < lo || hi > b.bytes {
		panic(fmt.Sprintf("cuda: Buffer.Slice(%d, %d) of %d bytes", lo, hi, b.bytes))
	}
	return Buffer{ptr: b.ptr + uint64(lo), bytes: hi - lo}
}

// Slice32 returns the view of 4-byte elements [lo, hi) of b.
func (b Buffer) Slice32(lo, hi int) Buffer { return b.Slice(4*lo, 4*hi) }

// Alloc returns bytes of uninitialised device memory.
func (d *Device) Alloc(bytes int) (Buffer, error) {
	err := d.enter()
	defer d.exit()
	if err != nil {
		return Buffer{}, err
	}
	if bytes <= 0 {
		return Buffer{}, fmt.Errorf("cuda: Alloc(%d): size must be positive", bytes)
	}
	var p uint64
	if err := d.api.check(fmt.Sprintf("cuMemAlloc(%d bytes)", bytes), call(d.api.cuMemAlloc, uintptr(unsafe.Pointer(&p)), uintptr(bytes))); err != nil {
		return Buffer{}, err
	}
	d.allocd += int64(bytes)
	return Buffer{ptr: p, bytes: bytes}, nil
}

// Alloc32 returns device memory for n float32 (or int32) values.
func (d *Device) Alloc32(n int) (Buffer, error) {
	if n <= 0 || n > math.MaxInt/4 {
		return Buffer{}, fmt.Errorf("cuda: Alloc32(%d): count out of range", n)
	}
	return d.Alloc(4 * n)
}

// Free releases memory from Alloc (the whole allocation, not a slice of it).
func (d *Device) Free(b Buffer) error {
	if b.Nil() {
		return nil
	}
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	d.allocd -= int64(b.bytes)
	return d.api.check("cuMemFree", call(d.api.cuMemFree, uintptr(b.ptr)))
}

// Elem is a type whose values can be copied to and from device memory as they are.
type Elem interface {
	~float32 | ~float64 | ~int32 | ~uint32 | ~int64 | ~uint64 | ~uint8 | ~uint16 | ~int16 | ~int8
}

// Upload copies src into the start of dst (ordered on the device's stream; src may be reused when
// it returns).
func Upload[T Elem](d *Device, dst Buffer, src []T) error {
	n := len(src) * int(unsafe.Sizeof(*new(T)))
	if n > dst.bytes || dst.Nil() {
		return fmt.Errorf("cuda: Upload of %d bytes into a buffer of %d", n, dst.bytes)
	}
	if n == 0 {
		return nil
	}
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	r := call(d.api.cuMemcpyHtoDAsync, uintptr(dst.ptr), uintptr(unsafe.Pointer(&src[0])), uintptr(n), d.stream)
	if err := d.api.check("cuMemcpyHtoDAsync", r); err != nil {
		return err
	}
	// A copy from pageable memory has been staged when the call returns; synchronising as well
	// keeps src's lifetime obvious and reports earlier kernels' errors here.
	err = d.api.check("cuStreamSynchronize", call(d.api.cuStreamSynchronize, d.stream))
	runtime.KeepAlive(src)
	return err
}

// Download waits for the device's work and copies the start of src into dst.
func Download[T Elem](d *Device, dst []T, src Buffer) error {
	n := len(dst) * int(unsafe.Sizeof(*new(T)))
	if n > src.bytes || src.Nil() {
		return fmt.Errorf("cuda: Download of %d bytes from a buffer of %d", n, src.bytes)
	}
	if n == 0 {
		return nil
	}
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	r := call(d.api.cuMemcpyDtoHAsync, uintptr(unsafe.Pointer(&dst[0])), uintptr(src.ptr), uintptr(n), d.stream)
	if err := d.api.check("cuMemcpyDtoHAsync", r); err != nil {
		return err
	}
	err = d.api.check("cuStreamSynchronize", call(d.api.cuStreamSynchronize, d.stream))
	runtime.KeepAlive(dst)
	return err
}

// Copy copies src into the start of dst on the device's stream.
func (d *Device) Copy(dst, src Buffer) error {
	if src.bytes > dst.bytes || src.Nil() || dst.Nil() {
		return fmt.Errorf("cuda: Copy of %d bytes into a buffer of %d", src.bytes, dst.bytes)
	}
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	return d.copyAsync(dst, src)
}

// copyAsync copies src into the start of dst on the stream (the caller has entered and checked the
// sizes).
func (d *Device) copyAsync(dst, src Buffer) error {
	return d.api.check("cuMemcpyDtoDAsync", call(d.api.cuMemcpyDtoDAsync, uintptr(dst.ptr), uintptr(src.ptr), uintptr(src.bytes), d.stream))
}

// zeroAsync sets b to zero bytes on the stream (the caller has entered).
func (d *Device) zeroAsync(b Buffer) error {
	return d.api.check("cuMemsetD8Async", call(d.api.cuMemsetD8Async, uintptr(b.ptr), 0, uintptr(b.bytes), d.stream))
}

// Fill32 sets every 4-byte word of b to the bits v (math.Float32bits for a float), on the stream.
func (d *Device) Fill32(b Buffer, v uint32) error {
	if b.Nil() || b.bytes%4 != 0 {
		return fmt.Errorf("cuda: Fill32 of a buffer of %d bytes", b.bytes)
	}
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	return d.api.check("cuMemsetD32Async", call(d.api.cuMemsetD32Async, uintptr(b.ptr), uintptr(v), uintptr(b.bytes/4), d.stream))
}

// Zero sets b to zero bytes, on the stream.
func (d *Device) Zero(b Buffer) error {
	if b.Nil() {
		return fmt.Errorf("cuda: Zero of a nil buffer")
	}
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	return d.zeroAsync(b)
}

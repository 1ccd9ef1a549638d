package data

import (
	"errors"
	"fmt"
)

// Stream turns a Generator into a Source, optionally preparing batches
// ahead in a background goroutine. Because batch k is a pure function of k,
// prefetching never changes what Next returns, and Restore only has to move
// the counter. A Stream is not safe for concurrent use.
type Stream struct {
	g        Generator
	id       string
	prefetch int
	step     uint64 // batches delivered
	err      error  // sticky error returned by Fill for batch step
	run      *pipeline
	closed   bool

	lane, lanes uint64 // Next returns batch step+lane and moves step by lanes (see Interleave)
}

// pipeline is one run of the prefetch goroutine.
type pipeline struct {
	ready chan *slot // filled batches, in step order
	free  chan *slot // batches for the producer to fill
	stop  chan struct{}
	done  chan struct{}
}

type slot struct {
	b   Batch
	err error
}

// NewStream returns a Source over g that prepares up to prefetch batches
// ahead (0: none; batches are made inside Next).
func NewStream(g Generator, prefetch int) (*Stream, error) {
	if prefetch < 0 {
		return nil, fmt.Errorf("data: prefetch %d is negative", prefetch)
	}
	return &Stream{g: g, id: g.ID(), prefetch: prefetch, lanes: 1}, nil
}

// Next fills b with the next batch. The slices in b belong to the caller
// until b is passed to Next again (with prefetching, Next swaps b's buffers
// with the filled ones instead of copying).
func (s *Stream) Next(b *Batch) error {
	switch {
	case s.closed:
		return errors.New("data: Next on a closed source")
	case s.err != nil:
		return s.err
	case s.prefetch == 0:
		if err := s.g.Fill(s.step+s.lane, b); err != nil {
			s.err = err
			return err
		}
		s.step += s.lanes
		return nil
	}
	if s.run == nil {
		s.start()
	}
	sl := <-s.run.ready
	if sl.err != nil {
		s.err = sl.err
		s.halt()
		return s.err
	}
	*b, sl.b = sl.b, *b // hand over the filled buffers, recycle the caller's
	s.run.free <- sl
	s.step += s.lanes
	return nil
}

func (s *Stream) start() {
	p := &pipeline{
		ready: make(chan *slot, s.prefetch),
		free:  make(chan *slot, s.prefetch),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	for range s.prefetch {
		p.free <- new(slot)
	}
	s.run = p
	go s.produce(p, s.step+s.lane)
}

// produce fills batches step, step+lanes, ... until stopped or Fill fails.
func (s *Stream) produce(p *pipeline, step uint64) {
	defer close(p.done)
	for ; ; step += s.lanes {
		var sl *slot
		select {
		case sl = <-p.free:
		case <-p.stop:
			return
		}
		sl.err = s.g.Fill(step, &sl.b)
		select {
		case p.ready <- sl:
		case <-p.stop:
			return
		}
		if sl.err != nil {
			return
		}
	}
}

// halt stops the prefetch goroutine and waits for it.
func (s *Stream) halt() {
	if s.run != nil {
		close(s.run.stop)
		<-s.run.done
		s.run = nil
	}
}

// Cursor returns the position of the next batch Next will return.
func (s *Stream) Cursor() Cursor { return Cursor{Source: s.id, Step: s.step} }

// Restore moves to c, which must come from a source with the same identity.
func (s *Stream) Restore(c Cursor) error {
	if s.closed {
		return errors.New("data: Restore on a closed source")
	}
	if c.Source != s.id {
		return fmt.Errorf("data: cursor belongs to source %q, not %q (different data, seed, batch shape or order)", c.Source, s.id)
	}
	s.halt()
	s.step, s.err = c.Step, nil
	return nil
}

// Interleave makes the stream one of lanes streams that share its batches, as the
// ranks of a data-parallel run do: from the cursor k on, Next returns batches k+lane,
// k+lane+lanes, k+lane+2·lanes, ... and moves the cursor by lanes each time, so once
// every lane has taken n batches the cursor is k + n·lanes on all of them, as if one
// stream had delivered the n·lanes batches. Restore keeps the interleaving.
func (s *Stream) Interleave(lane, lanes int) error {
	if lanes < 1 || lane < 0 || lane >= lanes {
		return fmt.Errorf("data: lane %d of %d lanes", lane, lanes)
	}
	s.halt()
	s.lane, s.lanes = uint64(lane), uint64(lanes)
	return nil
}

// Close stops prefetching and releases the generator.
func (s *Stream) Close() error {
	if s.closed {
		return nil
	}
	s.halt()
	s.closed = true
	return s.g.Close()
}

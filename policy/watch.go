package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch reloads the policy whenever files under Dir change: after the last
// event of a burst it waits Options.Debounce, then calls Reload (whose
// errors are logged, remembered in Status and passed to OnReload). It
// watches Dir and its subdirectories, except hidden ones, and picks up new
// subdirectories. Editors that save by renaming and Kubernetes ConfigMap
// updates (a swap of the ..data link inside Dir) are seen; replacing Dir
// itself is not. Watch returns nil when ctx ends, or an error if watching
// cannot start or stops; the caller owns the goroutine and waits for it.
func (e *Engine) Watch(ctx context.Context) error {
	if e.opts.Bundle != nil {
		// A bundle is polled (Options.Bundle.Poll) instead.
		return e.pollBundle(ctx)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch policy %s: %w", e.opts.Dir, err)
	}
	defer w.Close()
	if err := addTree(w, e.opts.Dir); err != nil {
		return fmt.Errorf("watch policy %s: %w", e.opts.Dir, err)
	}
	if e.testWatched != nil {
		e.testWatched()
	}

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return fmt.Errorf("watch policy %s: watcher closed", e.opts.Dir)
			}
			if ev.Has(fsnotify.Create) && !hidden(filepath.Base(ev.Name)) {
				// A new subdirectory may already hold files: watch it and
				// let the reload read them.
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					if err := addTree(w, ev.Name); err != nil && !errors.Is(err, fs.ErrNotExist) {
						e.log.Warn("policy watch: cannot watch new directory", "path", ev.Name, "err", err)
					}
				}
			}
			timer.Reset(e.opts.Debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return fmt.Errorf("watch policy %s: watcher closed", e.opts.Dir)
			}
			// Typically a queue overflow: events were lost, so reload.
			e.log.Warn("policy watch error; reloading", "dir", e.opts.Dir, "err", err)
			timer.Reset(e.opts.Debounce)
		case <-timer.C:
			_ = e.Reload(ctx) // logged, remembered and reported by Reload
		}
	}
}

// addTree watches root, if it is a directory, and every directory under
// it that is not hidden.
func addTree(w *fsnotify.Watcher, root string) error {
	root = walkRoot(root)
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if path != root && hidden(d.Name()) {
			return filepath.SkipDir
		}
		return w.Add(path)
	})
}

package app_test

import (
	"testing"

	"github.com/sagasuite/sagasuite/services/order/internal/app"
)

func TestChangesSignalOnlyTheOrdersWatchers(t *testing.T) {
	c := app.NewChanges()
	a1, stopA1 := c.Subscribe("a")
	a2, stopA2 := c.Subscribe("a")
	b, stopB := c.Subscribe("b")
	defer stopB()

	c.Publish("a")
	c.Publish("a") // merges with the pending signal; never blocks
	for i, ch := range []<-chan struct{}{a1, a2} {
		select {
		case <-ch:
		default:
			t.Errorf("watcher %d of a was not signalled", i)
		}
		select {
		case <-ch:
			t.Errorf("watcher %d of a got two signals for merged changes", i)
		default:
		}
	}
	select {
	case <-b:
		t.Error("watcher of b signalled for a change of a")
	default:
	}

	stopA1()
	c.Publish("a")
	select {
	case <-a1:
		t.Error("signal after the subscription ended")
	default:
	}
	select {
	case <-a2:
	default:
		t.Error("the remaining watcher of a was not signalled")
	}
	stopA2()
}

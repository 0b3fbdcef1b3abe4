package inbox_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/inbox"
	"github.com/sagasuite/sagasuite/libs/sqlstore"
	"github.com/sagasuite/sagasuite/libs/testenv"
)

func TestClaimOncePerConsumerEvenConcurrently(t *testing.T) {
	db, _ := testenv.MySQLDatabase(t)
	ctx := context.Background()
	if err := sqlstore.MigrateMessaging(ctx, db); err != nil {
		t.Fatal(err)
	}
	claim := func(consumer, id string) bool {
		var first bool
		err := sqlstore.InTx(ctx, db, func(tx *sql.Tx) error {
			var err error
			first, err = inbox.Claim(ctx, tx, consumer, id, time.Now())
			return err
		})
		if err != nil {
			t.Fatalf("claim: %v", err)
		}
		return first
	}
	if !claim("inventory", "e1") || claim("inventory", "e1") {
		t.Fatalf("second claim of the same event must report already processed")
	}
	if !claim("payment", "e1") {
		t.Fatalf("another consumer must be able to claim the same event")
	}

	// 16 copies of one event race: exactly one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if claim("shipping", "e2") {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d concurrent claims won, want exactly 1", wins)
	}
	if ok, err := inbox.Processed(ctx, db, "shipping", "e2"); err != nil || !ok {
		t.Fatalf("Processed = %v, %v", ok, err)
	}
}

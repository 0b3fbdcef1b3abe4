package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// A bad environment stops start-up before anything listens, naming each variable.
func TestRunRefusesBadConfig(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"CONSOLE_ORDER_URL=order:8091", "CONSOLE_LOG_FORMAT=xml"}, &stderr)
	if err == nil {
		t.Fatal("run accepted a bad environment")
	}
	for _, want := range []string{"CONSOLE_INVENTORY_URL", "CONSOLE_NOTIFICATION_URL", "CONSOLE_LOG_FORMAT"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	// Once every variable parses, the values are checked: the order URL lacks its scheme.
	err = run(context.Background(), []string{"CONSOLE_ORDER_URL=order:8091", "CONSOLE_INVENTORY_URL=http://inventory:8092",
		"CONSOLE_PAYMENT_URL=http://payment:8093", "CONSOLE_SHIPPING_URL=http://shipping:8094",
		"CONSOLE_NOTIFICATION_URL=http://notification:8095"}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "CONSOLE_ORDER_URL") || strings.Contains(err.Error(), "CONSOLE_PAYMENT_URL") {
		t.Errorf("bad order URL: %v, want an error naming CONSOLE_ORDER_URL alone", err)
	}
	if stderr.Len() != 0 {
		t.Errorf("logged before the config was good: %s", stderr.String())
	}
}

package main

import (
	"flag"
	"fmt"
	"net"
	"strings"

	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// addrFlags registers the five services' gRPC address flags, defaulting to
// the documented local ports (services/README.md; the dev stack's too).
func addrFlags(fs *flag.FlagSet) *suite.Addrs {
	a := &suite.Addrs{}
	fs.StringVar(&a.Order, "order", "127.0.0.1:50051", "order service gRPC `address`")
	fs.StringVar(&a.Inventory, "inventory", "127.0.0.1:50052", "inventory service gRPC `address`")
	fs.StringVar(&a.Payment, "payment", "127.0.0.1:50053", "payment service gRPC `address`")
	fs.StringVar(&a.Shipping, "shipping", "127.0.0.1:50054", "shipping service gRPC `address`")
	fs.StringVar(&a.Notification, "notification", "127.0.0.1:50055", "notification service gRPC `address`")
	return a
}

// hostPorts reads a comma-separated host:port list given as --flag; empty
// entries are skipped, an empty list is an error.
func hostPorts(flag, list string) ([]string, error) {
	var out []string
	for _, a := range strings.Split(list, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("--%s: %q is not host:port", flag, a)
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--%s is empty", flag)
	}
	return out, nil
}

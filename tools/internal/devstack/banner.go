package devstack

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// PrintBanner writes what a developer needs: each service's gRPC address and
// ops endpoints, the servers behind them, the catalog, and grpcurl lines
// that place and follow an order (every service serves reflection).
func (s *Stack) PrintBanner(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  SERVICE\tgRPC (reflection, health)\tgRPC-Web + Connect (browsers)\tOPS")
	for _, name := range suite.Services {
		ops := "http://" + s.Ops.Of(name)
		web := "-"
		if a := s.Web.Of(name); a != "" {
			web = "http://" + a
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s/metrics  %s/healthz  %s/readyz\n", name, s.GRPC.Of(name), web, ops, ops, ops)
	}
	tw.Flush()
	if len(s.WebOrigins) > 0 {
		fmt.Fprintf(w, "  Browser pages may call the gRPC-Web/Connect ports from %s (CORS).\n", strings.Join(s.WebOrigins, ", "))
	}

	fmt.Fprintln(w)
	sv := s.Servers
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	where := func(inProcess bool, what string) string {
		if inProcess {
			return "in-process " + what
		}
		return "external"
	}
	kafka := sv.Kafka
	if sv.TopicPrefix != "" {
		kafka += "  (topic prefix " + sv.TopicPrefix + ")"
	}
	fmt.Fprintf(tw, "  Kafka\t%s\t%s\n", where(sv.KafkaInProcess, "(franz-go kfake)"), kafka)
	mysqlWhere := where(sv.MySQLInProcess, "(go-mysql-server in memory, a server and one connection per service)")
	fmt.Fprintf(tw, "  MySQL\t%s\t%s\n", mysqlWhere, strings.Join(sv.MySQL, "  "))
	mongo := sv.Mongo + "  database " + sv.MongoDatabase
	if sv.MongoInProcess {
		mongo += "  (SQLite files in " + sv.MongoDir + ", removed on exit)"
	}
	fmt.Fprintf(tw, "  MongoDB\t%s\t%s\n", where(sv.MongoInProcess, "(FerretDB v1, SQLite)"), mongo)
	ledger := "ledger " + sv.GatewayLedger
	if sv.GatewayLedgerTemp {
		ledger += " (removed on exit)"
	}
	fmt.Fprintf(tw, "  Gateway\tin-process (simulated payment gateway, HTTP)\t%s  %s\n", s.GatewayURL, ledger)
	if sv.NotificationInMemory {
		fmt.Fprintf(tw, "  Cassandra\tnone\tno Cassandra server exists in Go: notification keeps its saga log and notifications IN MEMORY (lost on exit)\n")
	} else {
		fmt.Fprintf(tw, "  Cassandra\texternal\t%s  keyspace %s\n", sv.Cassandra, sv.CassandraKeyspace)
	}
	tw.Flush()

	if len(s.Catalog) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "  Catalog (stock added once per database):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, p := range s.Catalog {
			fmt.Fprintf(tw, "    %s\t%8s\t%6d units\t%s\n", p.SKU, fmt.Sprintf("%d.%02d %s", p.Price/100, p.Price%100, Currency), p.Stock, p.Name)
		}
		tw.Flush()
	}

	if s.ConsoleURL != "" {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "Web console: %s  (paste a token below under Token)\n", s.ConsoleURL)
	}

	fmt.Fprintln(w)
	fmt.Fprintf(w, "Tokens (every call but health needs one; valid %s; mint more with `go run ./tools/cmd/sagactl token --customer ID` or `--role operator`):\n", BannerTokenTTL)
	fmt.Fprintf(w, "  customer %s:\n    %s\n", DemoCustomer, s.CustomerToken)
	fmt.Fprintf(w, "  operator %s:\n    %s\n", DemoOperator, s.OperatorToken)
	if s.stateFile != "" {
		fmt.Fprintf(w, "  (also in %s: `source` it for $%sCUSTOMER_TOKEN and $%sOPERATOR_TOKEN)\n", s.stateFile, statePrefix, statePrefix)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Place an order as the demo customer (COMPLETED in a moment; try \"payment_method_token\": \"tok_decline\", \"country_code\": \"AQ\" or sku DEV-POSTER for the cancel paths):")
	fmt.Fprintf(w, "  %s\n", s.GRPCurlCreateOrder())
	fmt.Fprintln(w, "Follow it (order_id from the answer):")
	fmt.Fprintf(w, "  %s\n", GRPCurl(s.CustomerToken, `{"order_id":"ORDER_ID"}`, s.GRPC.Order, "sagasuite.order.v1.OrderService/WatchOrder"))
	fmt.Fprintln(w, "Its saga log, as an operator:")
	fmt.Fprintf(w, "  %s\n", GRPCurl(s.OperatorToken, `{"order_id":"ORDER_ID"}`, s.GRPC.Notification, "sagasuite.notification.v1.NotificationService/GetSagaLog"))
	fmt.Fprintln(w, "Check that the sagas add up (sagactl finds this stack's key and mints its own token):")
	fmt.Fprintf(w, "  go run ./tools/cmd/sagactl audit --customers %s --order %s --inventory %s --payment %s --shipping %s --notification %s\n",
		DemoCustomer, s.GRPC.Order, s.GRPC.Inventory, s.GRPC.Payment, s.GRPC.Shipping, s.GRPC.Notification)
}

// GRPCurl is a ready-to-paste grpcurl command calling method at addr with
// the JSON body, sending token as its bearer token (-H: on the reflection
// calls too). body and token must hold no single quote.
func GRPCurl(token, body, addr, method string) string {
	return fmt.Sprintf("grpcurl -plaintext -H 'authorization: Bearer %s' -d '%s' %s %s", token, body, addr, method)
}

// DemoCustomer is the customer id of the printed grpcurl order.
const DemoCustomer = "0190c0de-0000-7000-8000-00000000d0e5"

// GRPCurlCreateOrder is a ready-to-paste grpcurl command placing one order
// for DemoCustomer, with its token, of the first product in the catalog that has stock.
func (s *Stack) GRPCurlCreateOrder() string {
	p := Product{SKU: "DEV-MUG", Price: 1250}
	for _, c := range s.Catalog {
		if c.Stock > 0 {
			p = c
			break
		}
	}
	req := map[string]any{
		"customer_id": DemoCustomer,
		"currency":    Currency,
		"lines":       []map[string]any{{"sku": p.SKU, "quantity": 1, "unit_price_minor": p.Price}},
		"shipping_address": map[string]string{
			"name": "Ada Lovelace", "line1": "1 Analytical Street", "city": "Berlin", "postal_code": "10115", "country_code": "DE",
		},
		"payment_method_token": "tok_visa",
	}
	body, _ := json.Marshal(req)
	return GRPCurl(s.CustomerToken, string(body), s.GRPC.Order, "sagasuite.order.v1.OrderService/CreateOrder")
}

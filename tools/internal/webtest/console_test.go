package webtest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/google/uuid"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/tools/internal/console"
	"github.com/sagasuite/sagasuite/tools/internal/devstack"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
	"github.com/sagasuite/sagasuite/web"
)

// wait bounds each step that waits for an outcome (a saga, a page): a bound
// for a hang on a loaded 2-core box, not a speed target.
const wait = 3 * time.Minute

// TestConsoleInBrowser drives the console in Debian's chromium against an
// in-process dev stack: a customer places an order with the keyboard and sees
// it COMPLETED live; a declined card's order shows its compensation in the
// timeline; another customer is refused that order; an operator lists it.
// Every tab fails the test on a console error or an uncaught exception.
func TestConsoleInBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found (%v): `make infra-install` (deploy/local/infra.sh install) installs Debian's chromium", err)
	}
	logs := &testenv.SyncBuffer{}
	defer func() {
		if t.Failed() {
			t.Logf("stack logs:\n%s", logs.String())
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute) // a bound for a hang
	defer cancel()

	// The services allow the console's origin by CORS, so it must be known
	// before Start: a free port below Linux's ephemeral range (32768+).
	consoleAddr := freeLowPort(t)
	origin := "http://" + consoleAddr
	const free = "127.0.0.1:0"
	all := suite.Addrs{Order: free, Inventory: free, Payment: free, Shipping: free, Notification: free}
	st, err := devstack.Start(ctx, devstack.Options{
		GRPC: all, Ops: all, KafkaAddr: free, MySQLAddr: free, MongoAddr: free, GatewayAddr: free,
		OrderDeadline: 10 * time.Minute, LogLevel: config.LevelWarn, LogOutput: logs, ReadyTimeout: 3 * time.Minute,
		Console: consoleAddr, WebOrigins: []string{origin},
	})
	if err != nil {
		t.Fatalf("devstack.Start: %v", err)
	}
	defer func() {
		if err := st.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	}()
	if st.ConsoleURL != origin && st.ConsoleURL != origin+"/" {
		t.Fatalf("console served at %q, want %s", st.ConsoleURL, origin)
	}
	t.Logf("dev stack ready in %s; console %s", st.ReadyIn, st.ConsoleURL)

	browser := startBrowser(t, ctx, chromium)
	shots := screenshotDirs(t)
	base := origin + "/"

	// (a) + keyboard: the customer's tab, driven by Tab, ArrowUp and Enter only.
	customer := browser.tab(t, "customer")
	customer.do(t, "open the console", chromedp.Navigate(base+"#/token"), visible("#token"))
	customer.useToken(t, st.CustomerToken)
	customer.shot(t, shots, "token")
	customer.do(t, "open the shop", setHash("#/shop"), visible(`input[aria-label^="Quantity of"]`))
	mugQty := customer.eval(t, "find DEV-MUG's quantity input", `[...document.querySelectorAll("table.catalog tbody tr")].find(r => r.querySelector("code")?.textContent === "DEV-MUG")?.querySelector("input")?.id ?? ""`)
	if mugQty == "" {
		t.Fatalf("the catalog has no DEV-MUG row")
	}
	customer.tabTo(t, mugQty)
	customer.do(t, "raise the quantity", chromedp.KeyEvent(kb.ArrowUp))
	if v := customer.eval(t, "read the quantity", `document.activeElement.value`); v != "1" {
		t.Fatalf("DEV-MUG quantity after ArrowUp = %q, want 1", v)
	}
	customer.tabTo(t, "place-order")
	customer.do(t, "press Enter on Place order", clearStatus(), chromedp.KeyEvent(kb.Enter))
	paid := customer.placedOrder(t)
	customer.do(t, "see the order COMPLETED live (WatchOrder)",
		visible(fmt.Sprintf(`tr[data-order-id=%q] .badge-completed`, paid)))
	customer.shot(t, shots, "shop")
	customer.clean(t, nil)

	// (b) a declined card, placed with the mouse: the order is cancelled and
	// its detail shows the compensation (stock restored).
	customer.do(t, "order a T-shirt with a declined card",
		chromedp.SetValue(chromedp.CSS("#"+mugQty), "0"),
		chromedp.SetValue(chromedp.CSS(`#payment-token`), "tok_decline"))
	tshirtQty := customer.eval(t, "find DEV-TSHIRT's quantity input", `[...document.querySelectorAll("table.catalog tbody tr")].find(r => r.querySelector("code")?.textContent === "DEV-TSHIRT")?.querySelector("input")?.id ?? ""`)
	if tshirtQty == "" {
		t.Fatalf("the catalog has no DEV-TSHIRT row")
	}
	customer.do(t, "place it", clearStatus(), chromedp.SetValue(chromedp.CSS("#"+tshirtQty), "1"), chromedp.Click(chromedp.CSS("#place-order")))
	declined := customer.placedOrder(t)
	customer.do(t, "see the order CANCELLED live",
		visible(fmt.Sprintf(`tr[data-order-id=%q] .badge-cancelled`, declined)))
	// The saga log gains STOCK_RESTORED just after the order is cancelled:
	// the detail keeps following the log after the terminal status, so it
	// appears without reopening the page.
	customer.do(t, "open the declined order's detail and see the compensation arrive", setHash("#/orders/"+declined),
		visible(".timeline table"), visible(".timeline tr.kind-compensation"))
	detail := customer.text(t, "main")
	for _, want := range []string{"PAYMENT_FAILED", "failure", "STOCK_RESTORED", "compensation", "CANCELLED"} {
		if !strings.Contains(detail, want) {
			t.Errorf("order detail lacks %q:\n%s", want, detail)
		}
	}
	customer.shot(t, shots, "order-detail-declined")
	customer.clean(t, nil)

	// (c) another customer opens the first customer's order: refused.
	otherToken, err := st.Keys.Mint(auth.Principal{Subject: uuid.NewString(), Roles: []auth.Role{auth.RoleCustomer}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other := browser.tab(t, "other customer")
	other.do(t, "open the console", chromedp.Navigate(base+"#/token"), visible("#token"))
	other.useToken(t, otherToken)
	other.do(t, "open another customer's order", setHash("#/orders/"+paid), visible("#main .alert"))
	refusal := other.text(t, "main")
	if !strings.Contains(other.text(t, "#main .alert"), "Order not found: there is no such order, or your token may not see it") {
		t.Errorf("another customer's view of the order is not the friendly not-found state:\n%s", refusal)
	}
	if strings.Contains(refusal, "not_found") || strings.Contains(refusal, "order not found: ") {
		t.Errorf("the refusal shows the server's raw error:\n%s", refusal)
	}
	if strings.Contains(refusal, "DEV-MUG") || strings.Contains(refusal, devstack.DemoCustomer) {
		t.Errorf("the refusal shows the order's content:\n%s", refusal)
	}
	other.shot(t, shots, "order-detail-refused")
	// The browser logs the refused call's HTTP status (Connect maps
	// permission_denied to 403, not_found to 404); nothing else may appear.
	other.clean(t, regexp.MustCompile(`status of (403|404)`))

	// (d) an operator lists every customer's orders (no customer id), then
	// only the cancelled ones: the order service filters.
	operator := browser.tab(t, "operator")
	operator.do(t, "open the console", chromedp.Navigate(base+"#/token"), visible("#token"))
	operator.useToken(t, st.OperatorToken)
	operator.do(t, "list every customer's orders", setHash("#/ops"), visible("#ops-list"),
		chromedp.Click(chromedp.CSS("#ops-list")),
		visible(fmt.Sprintf(`.ops-orders a[href="#/orders/%s"]`, paid)),
		visible(fmt.Sprintf(`.ops-orders a[href="#/orders/%s"]`, declined)))
	operator.do(t, "list the cancelled ones", chromedp.SetValue(chromedp.CSS("#ops-status"), "3"), // ORDER_STATUS_CANCELLED
		chromedp.Click(chromedp.CSS("#ops-list")),
		waitText(".ops-orders caption", "1 order,"),
		visible(fmt.Sprintf(`.ops-orders a[href="#/orders/%s"]`, declined)))
	if operator.eval(t, "look for the paid order", fmt.Sprintf(`String(document.querySelector(%q) !== null)`, fmt.Sprintf(`.ops-orders a[href="#/orders/%s"]`, paid))) != "false" {
		t.Errorf("the COMPLETED order is listed under status CANCELLED:\n%s", operator.text(t, "main"))
	}
	operator.shot(t, shots, "operations")
	operator.do(t, "open the paid order as the operator", setHash("#/orders/"+paid), visible(".timeline table"))
	if d := operator.text(t, "main"); !strings.Contains(d, "COMPLETED") || !strings.Contains(d, "ORDER_COMPLETED") {
		t.Errorf("the operator's view of the paid order lacks COMPLETED:\n%s", d)
	}
	operator.shot(t, shots, "order-detail-completed")
	operator.clean(t, nil)

	// (e) an operator sees a planted dead letter in notification's group and
	// redrives it by keyboard with a reason; the list then shows it resolved
	// by the operator, and the audit on Kafka names them.
	planted := plantDeadLetter(t, ctx, st)
	operator.do(t, "open the delivery panels", setHash("#/shop"), setHash("#/ops"),
		visible("#dl-open-shipping-shipping"), // shipping runs its group itself (OwnGroups)
		visible("#dl-open-notification-notification"), chromedp.Click(chromedp.CSS("#dl-open-notification-notification")),
		visible(`table.dead-letters[data-group="notification"]`))
	redrive := operator.eval(t, "find the planted dead letter's Redrive button",
		fmt.Sprintf(`[...document.querySelectorAll("table.dead-letters tbody tr")].find(r => r.textContent.includes(%q))?.querySelector("button.dl-redrive")?.id ?? ""`, planted))
	if redrive == "" {
		t.Fatalf("the planted dead letter (order %s) is not listed:\n%s", planted, operator.text(t, "main"))
	}
	operator.shot(t, shots, "operations-dead-letters")
	operator.tabTo(t, redrive)
	operator.do(t, "press Enter on Redrive, type a reason, press Enter", clearStatus(), chromedp.KeyEvent(kb.Enter),
		visible("#dl-reason"), chromedp.KeyEvent("TICKET-7 planted by the browser test"), chromedp.KeyEvent(kb.Enter),
		waitText("#status", "redriven"))
	row := "#" + strings.TrimSuffix(redrive, "-redrive")
	operator.do(t, "see it resolved in the list", visible(row+`[data-state="redrive"]`), waitText(row, "redriven by "+devstack.DemoOperator))
	if strings.Contains(operator.text(t, row), "Redrive") {
		t.Errorf("a resolved dead letter still offers Redrive: %s", operator.text(t, row))
	}
	operator.shot(t, shots, "operations-redriven")
	q, err := bus.NewDeadLetterQueue(strings.Split(st.Servers.Kafka, ","), bus.DeadLetterTopic(st.Servers.TopicPrefix+"notification"))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	found, err := q.List(ctx, bus.DeadLetterFilter{OrderID: planted, IncludeResolved: true})
	if err != nil || len(found) != 1 || found[0].Resolution == nil || found[0].Resolution.By != devstack.DemoOperator ||
		found[0].Resolution.Action != bus.DeadLetterRedrive || found[0].Resolution.Reason != "TICKET-7 planted by the browser test" {
		t.Errorf("the audit of the planted dead letter: %+v (err %v), want a redrive by %s", found, err, devstack.DemoOperator)
	}
	operator.clean(t, nil)
	errorStates(t, browser, st, base, shots)
	deployedConsole(t, browser, st, shots)
}

// deployedConsole: the console a deployment runs (tools/internal/console:
// the page same-origin, each service's Connect/gRPC-Web under
// /api/<service>/ forwarded unbuffered) in front of the same stack. A
// customer places an order and sees COMPLETED arrive through the forwarded
// WatchOrder stream; an operator's delivery panels load from all five
// services' OperationsService through it.
func deployedConsole(t *testing.T, browser *browser, st *devstack.Stack, shots []string) {
	upstream := func(name string) string { return "http://" + st.Web.Of(name) }
	cfg := console.Config{Addr: freeLowPort(t), OrderURL: upstream("order"), InventoryURL: upstream("inventory"),
		PaymentURL: upstream("payment"), ShippingURL: upstream("shipping"), NotificationURL: upstream("notification"),
		ShutdownTimeout: 5 * time.Second}
	handler, err := console.Handler(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("console.Handler: %v", err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	base := "http://" + ln.Addr().String() + "/"

	buyer := browser.tab(t, "deployed console: customer")
	buyer.do(t, "open the deployed console", chromedp.Navigate(base+"#/token"), visible("#token"))
	buyer.useToken(t, st.CustomerToken)
	buyer.do(t, "open the shop", setHash("#/shop"), visible(`input[aria-label^="Quantity of"]`))
	mugQty := buyer.eval(t, "find DEV-MUG's quantity input", `[...document.querySelectorAll("table.catalog tbody tr")].find(r => r.querySelector("code")?.textContent === "DEV-MUG")?.querySelector("input")?.id ?? ""`)
	if mugQty == "" {
		t.Fatalf("the deployed console's catalog has no DEV-MUG row")
	}
	buyer.do(t, "place an order", clearStatus(), chromedp.SetValue(chromedp.CSS("#"+mugQty), "1"), chromedp.Click(chromedp.CSS("#place-order")))
	placed := buyer.placedOrder(t)
	buyer.do(t, "see it COMPLETED live through the console's forwarding",
		visible(fmt.Sprintf(`tr[data-order-id=%q] .badge-completed`, placed)))
	buyer.clean(t, nil)

	ops := browser.tab(t, "deployed console: operator")
	ops.do(t, "open the deployed console", chromedp.Navigate(base+"#/token"), visible("#token"))
	ops.useToken(t, st.OperatorToken)
	actions := []chromedp.Action[chromedp.Void]{setHash("#/ops")}
	for _, svc := range suite.Services {
		actions = append(actions, visible(fmt.Sprintf("#dl-open-%s-%s", svc, svc))) // each service's own group, via /api/<svc>/
	}
	ops.do(t, "see every service's delivery panel", actions...)
	ops.shot(t, shots, "deployed-console-operations")
	ops.clean(t, nil)
}

// errorStates: an expired token, a service that does not answer and a
// validation error each get a clear state in the page. The browser itself
// logs every failed request to the console ("Failed to load resource: …"),
// which the page cannot prevent: each step allows exactly the lines of the
// failure it provokes, and nothing the console's own code logs.
func errorStates(t *testing.T, browser *browser, st *devstack.Stack, base string, shots []string) {
	// (e) a token that expired an hour ago, signed with the stack's own key.
	expired, err := st.Keys.Signer.Mint(auth.Principal{Subject: devstack.DemoCustomer, Roles: []auth.Role{auth.RoleCustomer}},
		time.Now().Add(-2*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	late := browser.tab(t, "expired token")
	late.do(t, "open the console", chromedp.Navigate(base+"#/token"), visible("#token"))
	late.useToken(t, expired)
	late.do(t, "open the shop with an expired token", setHash("#/shop"), waitText("#main .alert", "Your token has expired"))
	late.shot(t, shots, "error-token-expired")
	late.clean(t, regexp.MustCompile(`status of 401`)) // the refused calls (unauthenticated = 401)

	// (f) a console whose services do not answer: its config names a port
	// nothing listens on (below 32768, so no client connects to itself).
	closed := freeLowPort(t)
	ln, err := net.Listen("tcp", freeLowPort(t))
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + closed
	down, err := web.Serve(ln, web.Services{Order: url, Inventory: url, Payment: url, Shipping: url, Notification: url})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	gone := browser.tab(t, "services down")
	gone.do(t, "open the console whose services are down", chromedp.Navigate(down.URL+"#/token"), visible("#token"))
	gone.useToken(t, st.CustomerToken)
	gone.do(t, "open the shop", setHash("#/shop"), waitText("#main .alert-down", "service is unavailable"), visible("#main .alert-down button.retry"))
	gone.do(t, "open an order", setHash("#/orders/"+uuid.NewString()), waitText("#main .alert-down", "order service is unavailable"))
	gone.shot(t, shots, "error-service-down")
	refused := regexp.MustCompile(`net::ERR_CONNECTION_REFUSED .*` + regexp.QuoteMeta(url))
	gone.clean(t, refused)
	// One failed request per call the views make (catalog, my orders, the
	// order), none repeated by the page on its own: not a storm.
	if n := len(gone.seen()); n > 3 {
		t.Errorf("%d console lines for 3 failed calls: the page retries by itself\n%s", n, strings.Join(gone.seen(), "\n"))
	}

	// (g) validation errors next to their fields: a quantity over the
	// service's limit and a country that is no ISO code.
	form := browser.tab(t, "validation")
	form.do(t, "open the console", chromedp.Navigate(base+"#/token"), visible("#token"))
	form.useToken(t, st.CustomerToken)
	form.do(t, "open the shop", setHash("#/shop"), visible(`input[aria-label^="Quantity of"]`))
	mugQty := form.eval(t, "find DEV-MUG's quantity input", `[...document.querySelectorAll("table.catalog tbody tr")].find(r => r.querySelector("code")?.textContent === "DEV-MUG")?.querySelector("input")?.id ?? ""`)
	form.do(t, "order 20000 mugs to country Germany",
		chromedp.SetValue(chromedp.CSS("#"+mugQty), "20000"), chromedp.SetValue(chromedp.CSS("#addr-country_code"), "Germany"),
		chromedp.Click(chromedp.CSS("#place-order")),
		waitText("#"+mugQty+"-error", "10000"), waitText("#addr-country_code-error", "match"))
	for _, id := range []string{mugQty, "addr-country_code"} {
		if form.eval(t, "read aria-invalid", fmt.Sprintf(`document.getElementById(%q).getAttribute("aria-invalid") ?? ""`, id)) != "true" {
			t.Errorf("#%s is not marked aria-invalid", id)
		}
	}
	form.shot(t, shots, "error-validation")
	form.clean(t, regexp.MustCompile(`status of 400`)) // the refused CreateOrder (invalid_argument = 400)
}

// plantDeadLetter writes a dead letter into notification's dead-letter topic
// as its consumer would (the dlq-* headers): a valid ORDER_COMPLETED of a
// fresh order, so a redrive is handled without a new dead letter. It returns
// the order id.
func plantDeadLetter(t *testing.T, ctx context.Context, st *devstack.Stack) string {
	t.Helper()
	order := uuid.NewString()
	env, err := events.New(events.Meta{OrderID: order, CustomerID: uuid.NewString(), Producer: "order",
		CausationID: uuid.NewString(), OccurredAt: time.Now()}, &eventsv1.OrderCompleted{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := bus.EncodeEnvelope(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	prefix := st.Servers.TopicPrefix
	m.Topic = bus.DeadLetterTopic(prefix + "notification")
	m.Headers[bus.HeaderDLQError] = "planted by the browser test"
	m.Headers[bus.HeaderDLQTopic] = prefix + events.TopicOrders
	m.Headers[bus.HeaderDLQPartition] = "0"
	m.Headers[bus.HeaderDLQOffset] = "0"
	m.Headers[bus.HeaderDLQGroup] = prefix + "notification"
	m.Headers[bus.HeaderDLQAttempts] = "1"
	m.Headers[bus.HeaderDLQAt] = time.Now().UTC().Format(time.RFC3339Nano)
	p := bus.NewProducer(strings.Split(st.Servers.Kafka, ","))
	defer p.Close()
	if err := p.Publish(ctx, m); err != nil {
		t.Fatalf("plant a dead letter: %v", err)
	}
	return order
}

// freeLowPort returns a loopback address whose port (below 32768) was free a
// moment ago; the dev stack waits for it should it linger.
func freeLowPort(t *testing.T) string {
	t.Helper()
	start := 20000 + int(time.Now().UnixNano()%10000)
	for p := start; p < start+2000; p++ {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			addr := ln.Addr().String()
			ln.Close()
			return addr
		}
	}
	t.Fatalf("no free port in 127.0.0.1:%d–%d", start, start+2000)
	return ""
}

type browser struct{ ctx context.Context }

func startBrowser(t *testing.T, ctx context.Context, path string) *browser {
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.WindowSize(1200, 900),
		chromedp.UserDataDir(t.TempDir()))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // chromium refuses to run as root with its sandbox
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	// Start the browser now, so a failure to start is reported as such.
	if err := chromedp.Do(bctx); err != nil {
		cancelBrowser()
		cancelAlloc()
		t.Fatalf("start chromium %s: %v", path, err)
	}
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	return &browser{ctx: bctx}
}

// tab is one browser tab (its own sessionStorage, so its own token) that
// records every console error and uncaught exception.
type tab struct {
	name     string
	ctx      context.Context
	mu       sync.Mutex
	problems []string
}

func (b *browser) tab(t *testing.T, name string) *tab {
	t.Helper()
	tctx, cancel := chromedp.NewContext(b.ctx)
	t.Cleanup(cancel)
	tb := &tab{name: name, ctx: tctx}
	if err := chromedp.Do(tctx); err != nil { // open the tab before listening
		t.Fatalf("%s: open a tab: %v", name, err)
	}
	messages := chromedp.Console(tctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				tb.mu.Lock()
				tb.problems = append(tb.problems, fmt.Sprintf("%s (%s %s:%d)", m, m.Source, m.URL, m.Line))
				tb.mu.Unlock()
			}
		}
	}()
	return tb
}

// do runs actions, failing the test with what was being done.
func (tb *tab) do(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, wait)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("not done within %s: %w", wait, err)
		}
		t.Fatalf("%s: %s: %v\npage text:\n%s\nconsole problems: %v", tb.name, what, err, tb.text(t, "body"), tb.seen())
	}
}

func (tb *tab) eval(t *testing.T, what, js string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, wait)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		t.Fatalf("%s: %s: %v", tb.name, what, err)
	}
	return s
}

func (tb *tab) text(t *testing.T, sel string) string {
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q)?.innerText ?? ""`, sel)))
	if err != nil {
		return fmt.Sprintf("(page text unavailable: %v)", err)
	}
	return s
}

func (tb *tab) seen() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]string(nil), tb.problems...)
}

// clean fails the test on any console error or exception so far, but those
// that allowed matches.
func (tb *tab) clean(t *testing.T, allowed *regexp.Regexp) {
	t.Helper()
	for _, p := range tb.seen() {
		if allowed == nil || !allowed.MatchString(p) {
			t.Errorf("%s: browser console: %s", tb.name, p)
		}
	}
}

// useToken pastes a token in the Token view and saves it for the tab.
func (tb *tab) useToken(t *testing.T, token string) {
	t.Helper()
	tb.do(t, "save the token", setHash("#/token"), visible("#token"),
		chromedp.SetValue(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS(`form button[type="submit"]`)),
		waitText("#status", "Token saved"))
}

// tabTo presses Tab until the element with id has the focus: the console's
// actions must be reachable by keyboard.
func (tb *tab) tabTo(t *testing.T, id string) {
	t.Helper()
	var path []string
	for range 100 {
		got := tb.eval(t, "read the focus", `(document.activeElement?.id || document.activeElement?.tagName || "")`)
		if got == id {
			return
		}
		path = append(path, got)
		tb.do(t, "press Tab", chromedp.KeyEvent(kb.Tab))
	}
	t.Fatalf("%s: #%s not reached by 100 presses of Tab; focus went %v", tb.name, id, path)
}

var placedRE = regexp.MustCompile(`Order ([0-9a-f-]{36}) placed`)

// placedOrder waits for the page's "Order … placed" status and returns the id.
func (tb *tab) placedOrder(t *testing.T) string {
	t.Helper()
	tb.do(t, "wait for the order to be placed", waitText("#status", " placed."))
	m := placedRE.FindStringSubmatch(tb.text(t, "#status"))
	if m == nil {
		t.Fatalf("%s: status %q names no order", tb.name, tb.text(t, "#status"))
	}
	return m[1]
}

// shot saves a full-page PNG of the tab under each directory.
func (tb *tab) shot(t *testing.T, dirs []string, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, wait)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("%s: screenshot %s: %v", tb.name, name, err)
	}
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, name+".png"), png, 0o644); err != nil {
			t.Errorf("save screenshot: %v", err)
		}
	}
}

// screenshotDirs are where screenshots go: the test's artifact directory,
// .build/screenshots, and docs/screenshots (committed, shown in the README)
// when SAGASUITE_UPDATE_SCREENSHOTS=1.
func screenshotDirs(t *testing.T) []string {
	root := "../../.."
	dirs := []string{t.ArtifactDir(), filepath.Join(root, ".build", "screenshots")}
	if os.Getenv("SAGASUITE_UPDATE_SCREENSHOTS") == "1" {
		dirs = append(dirs, filepath.Join(root, "docs", "screenshots"))
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s", strings.Join(dirs, ", "))
	return dirs
}

// visible waits until an element matching the CSS selector is seen: scrolled
// into view, it is what the page shows at its centre (not hidden, nor covered
// by another element — a fixed status line once covered the orders' status).
// It asks the page itself, so an element re-rendered in place is seen as it is.
func visible(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Poll[bool](fmt.Sprintf(`(() => {
			const e = document.querySelector(%q);
			if (e === null || e.getClientRects().length === 0) return false;
			e.scrollIntoView({ block: "center", inline: "center" });
			// The first line box: a link wrapped over two lines has its bounding
			// box's centre between the lines, on its parent.
			const r = e.getClientRects()[0];
			const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
			return top !== null && (top === e || e.contains(top));
		})()`, sel), chromedp.WithPollingTimeout(0))(ctx, tg)
		return err
	})
}

// clearStatus empties the page's status line, so the next "Order … placed"
// read from it is the next order's.
func clearStatus() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[any](`document.getElementById("status").textContent = ""`)(ctx, tg)
		return err
	})
}

// setHash routes the single-page console (a same-document navigation).
func setHash(hash string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[any](fmt.Sprintf(`location.hash = %q`, hash))(ctx, tg)
		return err
	})
}

// waitText waits until the element's text contains want.
func waitText(sel, want string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Poll[bool](fmt.Sprintf(`(document.querySelector(%q)?.textContent ?? "").includes(%q)`, sel, want), chromedp.WithPollingTimeout(0))(ctx, tg)
		return err
	})
}

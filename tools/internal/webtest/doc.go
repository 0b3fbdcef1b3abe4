// Package webtest holds the web console's browser tests: Debian's chromium,
// driven headless by chromedp, against an in-process dev stack (see
// console_test.go and web/README.md).
package webtest

// Command broken does not compile: the stack's build test expects the
// compiler's error in Build's report.
package main

func main() {
	notDefinedAnywhere()
}

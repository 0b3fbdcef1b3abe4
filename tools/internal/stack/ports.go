package stack

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
)

// Service ports come from [portMin, portMax): below 32768, Linux's
// ephemeral range starts, where a client dialing a port nobody listens on
// yet can connect to itself (deploy/local/README.md); and above the local
// stack's own ports (all below 20000).
const (
	portMin = 20000
	portMax = 32000
)

// reserved holds the ports handed to stacks of this process that are still
// in use, so parallel stacks never pick the same one.
var reserved = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// reservePorts returns n distinct ports in [portMin, portMax) that nothing
// listened on when probed; releasePorts gives them back.
func reservePorts(n int) ([]int, error) {
	reserved.Lock()
	defer reserved.Unlock()
	ports := make([]int, 0, n)
	const tries = 1000
	for i := 0; i < tries && len(ports) < n; i++ {
		p := portMin + rand.IntN(portMax-portMin)
		if reserved.ports[p] || !free(p) {
			continue
		}
		reserved.ports[p] = true
		ports = append(ports, p)
	}
	if len(ports) < n {
		for _, p := range ports {
			delete(reserved.ports, p)
		}
		return nil, fmt.Errorf("found only %d of %d free ports in [%d, %d) after %d tries", len(ports), n, portMin, portMax, tries)
	}
	return ports, nil
}

func releasePorts(ports []int) {
	reserved.Lock()
	defer reserved.Unlock()
	for _, p := range ports {
		delete(reserved.ports, p)
	}
}

// free reports whether a listener can take the loopback port now.
func free(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

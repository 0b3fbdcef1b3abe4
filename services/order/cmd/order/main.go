// Command order runs the order service; its ORDER_* environment is described in
// services/README.md.
package main

import (
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/services/order"
)

func main() { service.Main("ORDER", order.Run) }

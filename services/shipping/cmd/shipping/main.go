// Command shipping runs the shipping service; its SHIPPING_* environment is
// described in services/README.md.
package main

import (
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/services/shipping"
)

func main() { service.Main("SHIPPING", shipping.Run) }

// Command inventory runs the inventory service; its INVENTORY_* environment is described in
// services/README.md.
package main

import (
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/services/inventory"
)

func main() { service.Main("INVENTORY", inventory.Run) }

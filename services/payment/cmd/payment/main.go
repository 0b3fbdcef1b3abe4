// Command payment runs the payment service; its PAYMENT_* environment is described in
// services/README.md.
package main

import (
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/services/payment"
)

func main() { service.Main("PAYMENT", payment.Run) }

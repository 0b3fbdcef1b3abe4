// Command notification runs the notification service; its NOTIFICATION_* environment is described in
// services/README.md.
package main

import (
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/services/notification"
)

func main() { service.Main("NOTIFICATION", notification.Run) }

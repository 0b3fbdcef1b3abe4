package adapters

import (
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Connect opens a client for uri (it dials lazily; Ping to check). Nil slices
// are stored as empty arrays, so documents never hold null for a list.
func Connect(uri string) (*mongo.Client, error) {
	client, err := mongo.Connect(options.Client().
		ApplyURI(uri).
		SetServerSelectionTimeout(5 * time.Second).
		SetTimeout(15 * time.Second).
		SetBSONOptions(&options.BSONOptions{NilSliceAsEmpty: true}))
	if err != nil {
		return nil, fmt.Errorf("mongo client for %s: %w", uri, err)
	}
	return client, nil
}

package adapters

import (
	"fmt"
	"net/url"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Connect opens a client for uri (it dials lazily; Ping to check). Nil slices
// are stored as empty arrays, so documents never hold null for a list.
//
// The URI carries the credentials and the transport security, as MongoDB
// defines them: mongodb://user:password@host/?authSource=admin&tls=true
// &tlsCAFile=/etc/mongo-tls/ca.crt&tlsCertificateKeyFile=… (see
// services/README.md); errors show it with the password masked.
func Connect(uri string) (*mongo.Client, error) {
	client, err := mongo.Connect(options.Client().
		ApplyURI(uri).
		SetServerSelectionTimeout(5 * time.Second).
		SetTimeout(15 * time.Second).
		SetBSONOptions(&options.BSONOptions{NilSliceAsEmpty: true}))
	if err != nil {
		return nil, fmt.Errorf("mongo client for %s: %w", redactURI(uri), err)
	}
	return client, nil
}

// redactURI is uri with its password masked, for errors and logs.
func redactURI(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "(unparsable URI)"
	}
	return u.Redacted()
}

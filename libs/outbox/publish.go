package outbox

import (
	"context"
	"errors"

	"github.com/segmentio/kafka-go"

	"github.com/sagasuite/sagasuite/libs/bus"
)

// ErrHeldBehind is PublishEach's answer for a record it did not publish
// because an earlier record of its key on its topic was refused: publishing
// it would put it ahead of that record. Try it again with that record.
var ErrHeldBehind = errors.New("held behind a refused record of its key")

// PermanentPublishError reports whether Kafka refused a record for a reason
// that retrying will not fix: the record is too large, its topic does not
// exist (the producer never auto-creates topics) or is invalid, or the broker
// calls the record invalid. Such a row is retried a bounded number of times
// (an unknown topic may be a topic being created right now) and then parked.
// Everything else — leader elections, network errors, timeouts, a broker
// that is down — is transient and retried without limit.
func PermanentPublishError(err error) bool {
	if err == nil {
		return false
	}
	var tooLarge kafka.MessageTooLargeError
	if errors.As(err, &tooLarge) {
		return true
	}
	var kerr kafka.Error
	if !errors.As(err, &kerr) {
		return false
	}
	switch kerr {
	case kafka.InvalidMessage, kafka.UnknownTopicOrPartition, kafka.InvalidMessageSize,
		kafka.MessageSizeTooLarge, kafka.InvalidTopic, kafka.RecordListTooLarge,
		kafka.TopicAuthorizationFailed, kafka.InvalidTimestamp, kafka.UnsupportedForMessageFormat,
		kafka.PolicyViolation, kafka.InvalidRecord, kafka.UnknownTopicID:
		return true
	}
	return false
}

// PublishEach publishes msgs as one batch and returns one error per message
// (nil: Kafka acknowledged it). When the batch fails for a reason that a
// single record causes, it finds which records: kafka-go's WriteErrors give
// the outcome per partition batch (a key's records share their partition's
// outcome, so none overtakes another); a record over the producer's size limit
// fails the whole call before anything is sent, so it is set aside and the
// rest published again; an unknown topic fails the call at the metadata step,
// so the records are then published topic by topic (a key's order across
// topics is not kept, as consumers do not rely on it). A transient failure of
// the whole call gives every message that error (publish them again later).
func PublishEach(ctx context.Context, pub bus.Publisher, msgs []bus.Message) []error {
	errs := make([]error, len(msgs))
	if len(msgs) == 0 {
		return errs
	}
	err := pub.Publish(ctx, msgs...)
	if err == nil {
		return errs
	}
	var perMessage kafka.WriteErrors
	if errors.As(err, &perMessage) && len(perMessage) == len(msgs) {
		copy(errs, perMessage)
		return errs
	}
	var tooLarge kafka.MessageTooLargeError
	if errors.As(err, &tooLarge) && len(msgs) > 1 {
		if i := indexOfRecord(msgs, tooLarge.Message); i >= 0 {
			// Set aside the record and, to keep its partition's order, the
			// later records of its key on its topic; publish the rest.
			var rest []int
			for j, m := range msgs {
				switch {
				case j == i:
					errs[j] = err
				case j > i && m.Topic == msgs[i].Topic && m.Key == msgs[i].Key:
					errs[j] = ErrHeldBehind
				default:
					rest = append(rest, j)
				}
			}
			restMsgs := make([]bus.Message, len(rest))
			for k, j := range rest {
				restMsgs[k] = msgs[j]
			}
			for k, e := range PublishEach(ctx, pub, restMsgs) {
				errs[rest[k]] = e
			}
			return errs
		}
	}
	if PermanentPublishError(err) && len(msgs) > 1 {
		byTopic := map[string][]int{}
		var topics []string
		for i, m := range msgs {
			if _, seen := byTopic[m.Topic]; !seen {
				topics = append(topics, m.Topic)
			}
			byTopic[m.Topic] = append(byTopic[m.Topic], i)
		}
		if len(topics) > 1 {
			for _, t := range topics {
				idx := byTopic[t]
				group := make([]bus.Message, len(idx))
				for j, i := range idx {
					group[j] = msgs[i]
				}
				for j, e := range PublishEach(ctx, pub, group) {
					errs[idx[j]] = e
				}
			}
			return errs
		}
	}
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// indexOfRecord finds the message kafka-go reported, by its event id header
// (every outbox record has one), else by key and value.
func indexOfRecord(msgs []bus.Message, rec kafka.Message) int {
	var id string
	for _, h := range rec.Headers {
		if h.Key == bus.HeaderEventID {
			id = string(h.Value)
		}
	}
	for i, m := range msgs {
		if id != "" && m.Headers[bus.HeaderEventID] == id {
			return i
		}
		if id == "" && m.Key == string(rec.Key) && len(m.Value) == len(rec.Value) {
			return i
		}
	}
	return -1
}

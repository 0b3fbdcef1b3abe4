package shipment

import "fmt"

// Packing rules. The saga's events carry no product weights, so every unit
// counts as UnitWeightGrams; a parcel holds at most UnitsPerParcel units and
// weighs its units plus PackagingWeightGrams.
const (
	UnitsPerParcel       = 5
	UnitWeightGrams      = 500
	PackagingWeightGrams = 200
)

// Pack splits the lines into parcels: lines in their order, each parcel
// filled with up to UnitsPerParcel units before the next is opened (a line
// may span parcels). Parcel ids are "<shipment id>-p<n>", n from 1.
func Pack(orderID string, lines []Line) []Parcel {
	shipmentID := IDFor(orderID)
	var parcels []Parcel
	var current *Parcel
	var units int64
	for _, line := range lines {
		remaining := line.Quantity
		for remaining > 0 {
			if current == nil || units == UnitsPerParcel {
				parcels = append(parcels, Parcel{ParcelID: fmt.Sprintf("%s-p%d", shipmentID, len(parcels)+1), WeightGrams: PackagingWeightGrams})
				current, units = &parcels[len(parcels)-1], 0
			}
			take := min(remaining, UnitsPerParcel-units)
			current.Lines = append(current.Lines, Line{SKU: line.SKU, Quantity: take, UnitPriceMinor: line.UnitPriceMinor})
			current.WeightGrams += take * UnitWeightGrams
			units += take
			remaining -= take
		}
	}
	return parcels
}

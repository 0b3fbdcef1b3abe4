package ports

import (
	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/grpcserver"

	inventoryv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/inventory/v1"
)

// Policy is who may call each InventoryService method: the catalog is
// public to every signed-in caller; changing products, prices and stock is
// the catalog admins' job, and the service identity's (demo and bench
// seed stock).
var Policy = grpcserver.Policy{
	inventoryv1.InventoryService_GetStock_FullMethodName:      auth.Roles,
	inventoryv1.InventoryService_ListProducts_FullMethodName:  auth.Roles,
	inventoryv1.InventoryService_UpsertProduct_FullMethodName: {auth.RoleCatalogAdmin, auth.RoleService},
	inventoryv1.InventoryService_AddStock_FullMethodName:      {auth.RoleCatalogAdmin, auth.RoleService},
}

-- Current stock per SKU and warehouse
SELECT sku, product_name, warehouse, on_hand, reorder_point
FROM main.supply_chain.inventory
ORDER BY warehouse, sku

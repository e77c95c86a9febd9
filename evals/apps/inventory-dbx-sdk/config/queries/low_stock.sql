-- SKUs at or below their reorder point, most urgent first
SELECT sku, product_name, warehouse, on_hand, reorder_point,
       reorder_point - on_hand AS shortfall
FROM main.supply_chain.inventory
WHERE on_hand <= reorder_point
ORDER BY shortfall DESC

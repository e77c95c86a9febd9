SELECT date_trunc('month', booked_at) AS month, sum(amount) AS revenue
FROM main.finance.bookings
GROUP BY 1
ORDER BY 1

//! The benchmark's dataset: schema, generated rows (split into parallel jobs), counts.

/// Schema and vocabulary (letters-only pseudo-words from md5, so text has word-like entropy).
pub(super) const SCHEMA_SQL: &str = r"
\set ON_ERROR_STOP 1
DROP TABLE IF EXISTS vocab, customers, orders, events;
CREATE UNLOGGED TABLE vocab AS
  SELECT i AS id, translate(substr(md5('w' || i), 1, 2 + (i % 9)), '0123456789abcdef', 'etaoinshrdlucmpy') AS w
  FROM generate_series(0, 4095) AS i;
CREATE TABLE customers (
  id bigint PRIMARY KEY, email text NOT NULL, full_name text NOT NULL, city text, country char(2),
  created_at timestamptz NOT NULL, balance numeric(12,2), active boolean, profile jsonb);
CREATE TABLE orders (
  id bigint PRIMARY KEY, customer_id bigint NOT NULL, status text NOT NULL, currency char(3),
  total numeric(12,2), tax numeric(10,2), created_at timestamptz NOT NULL, shipped_at timestamptz,
  shipping_address text, note text, items jsonb);
CREATE TABLE events (
  id bigint PRIMARY KEY, occurred_at timestamptz NOT NULL, customer_id bigint, kind text NOT NULL,
  request_id uuid, ip inet, duration_ms double precision, path text, payload jsonb);
";

// In the correlated subqueries below every aggregated expression mentions the inner series
// (`+ 0 * i`): an aggregate over outer columns only would belong to the outer query.

/// Customers `:first`..`:last`.
pub(super) const CUSTOMERS_SQL: &str = r"
\set ON_ERROR_STOP 1
INSERT INTO customers
SELECT g,
       a[1 + (random() * 4095)::int] || '.' || a[1 + (random() * 4095)::int] || (g % 100) || '@'
         || (ARRAY['gmail.com','yahoo.com','outlook.com','proton.me','example.org','acme.io'])[1 + (random() * 5)::int],
       initcap(a[1 + (random() * 4095)::int]) || ' ' || initcap(a[1 + (random() * 4095)::int]),
       initcap(a[1 + (power(random(), 3) * 800)::int]),
       (ARRAY['US','DE','FR','GB','NL','ES','IT','PL','SE','BR','IN','JP'])[1 + (power(random(), 2) * 11)::int],
       timestamptz '2019-01-01' + random() * interval '2000 days',
       round((random() * 10000 - 1000)::numeric, 2),
       random() < 0.85,
       jsonb_build_object(
         'tier', (ARRAY['free','pro','team','enterprise'])[1 + (power(random(), 3) * 3)::int],
         'newsletter', random() < 0.4,
         'score', round(random()::numeric * 100, 1),
         'tags', (SELECT jsonb_agg(a[1 + (power(random(), 2) * 4095)::int + 0 * i]) FROM generate_series(0, g % 4) AS i),
         'locale', (ARRAY['en-US','de-DE','fr-FR','en-GB','es-ES'])[1 + (random() * 4)::int])
FROM generate_series(:first, :last) AS g, (SELECT array_agg(w ORDER BY id) AS a FROM vocab) AS v;
";

/// Orders `:first`..`:last` of customers 1..`:customers`.
pub(super) const ORDERS_SQL: &str = r"
\set ON_ERROR_STOP 1
INSERT INTO orders
SELECT g,
       1 + (random() * (:customers - 1))::bigint,
       (ARRAY['delivered','delivered','delivered','shipped','paid','pending','cancelled','refunded'])[1 + (random() * 7)::int],
       (ARRAY['USD','EUR','GBP','USD'])[1 + (random() * 3)::int],
       round((random() * 500 + 5)::numeric, 2),
       round((random() * 60)::numeric, 2),
       ts, CASE WHEN random() < 0.8 THEN ts + random() * interval '7 days' END,
       (1 + (random() * 9999)::int) || ' ' || initcap(a[1 + (power(random(), 2) * 4095)::int]) || ' '
         || (ARRAY['Street','Avenue','Road','Lane','Way'])[1 + (random() * 4)::int] || ', '
         || lpad((random() * 99999)::int::text, 5, '0') || ' ' || initcap(a[1 + (power(random(), 3) * 800)::int]),
       CASE WHEN random() < 0.6 THEN
         (SELECT string_agg(a[1 + (power(random(), 2.5) * 4095)::int + 0 * i], ' ') FROM generate_series(0, 3 + g % 17) AS i) END,
       (SELECT jsonb_agg(jsonb_build_object('sku', 'SKU-' || (1000 + (random() * 90000)::int + 0 * i),
                                            'qty', 1 + (power(random(), 3) * 5)::int,
                                            'price', round((random() * 200 + 1)::numeric, 2)))
          FROM generate_series(0, g % 3) AS i)
FROM generate_series(:first, :last) AS g,
     LATERAL (SELECT timestamptz '2021-01-01' + random() * interval '1200 days' + g * interval '0 s' AS ts) AS t,
     (SELECT array_agg(w ORDER BY id) AS a FROM vocab) AS v;
";

/// Events `:first`..`:last` (an access log: ids, uuids, IPs, paths, small JSON payloads).
pub(super) const EVENTS_SQL: &str = r"
\set ON_ERROR_STOP 1
INSERT INTO events
SELECT g,
       timestamptz '2024-01-01' + g * interval '13 ms' + random() * interval '1 s',
       CASE WHEN random() < 0.9 THEN 1 + (random() * (:customers - 1))::bigint END,
       (ARRAY['page_view','page_view','page_view','api_call','api_call','login','logout','search','checkout','error'])[1 + (random() * 9)::int],
       md5(random()::text || g)::uuid,
       ('10.' || (random() * 255)::int || '.' || (random() * 255)::int || '.' || (random() * 255)::int)::inet,
       round((power(random(), 3) * 2000)::numeric, 3),
       '/' || (ARRAY['api/v1','app','static','account','search'])[1 + (random() * 4)::int] || '/'
         || a[1 + (power(random(), 2) * 4095)::int] || CASE WHEN random() < 0.5 THEN '/' || (random() * 100000)::int ELSE '' END,
       jsonb_build_object(
         'status', (ARRAY[200,200,200,200,201,204,301,304,400,401,404,500])[1 + (random() * 11)::int],
         'ua', (ARRAY['Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0','Mozilla/5.0 (Macintosh) Safari/605.1.15',
                      'Mozilla/5.0 (Windows NT 10.0) Chrome/126.0','curl/8.5.0','okhttp/4.12.0'])[1 + (random() * 4)::int],
         'query', CASE WHEN random() < 0.3 THEN a[1 + (power(random(), 2) * 4095)::int] || ' ' || a[1 + (power(random(), 2) * 4095)::int] END,
         'bytes', (power(random(), 2) * 500000)::int,
         'session', substr(md5(g::text || random()), 1, 16))
FROM generate_series(:first, :last) AS g, (SELECT array_agg(w ORDER BY id) AS a FROM vocab) AS v;
";

/// Secondary indexes (so restores rebuild indexes as real ones do), statistics.
pub(super) const FINISH_SQL: &str = r"
\set ON_ERROR_STOP 1
CREATE INDEX IF NOT EXISTS orders_customer_id_idx ON orders (customer_id);
CREATE INDEX IF NOT EXISTS events_occurred_at_idx ON events (occurred_at);
ANALYZE;
";

/// Row counts checked after every restore.
pub(super) const COUNT_SQL: &str = "SELECT (SELECT count(*) FROM customers) || '/' || (SELECT count(*) FROM orders) || '/' \
                         || (SELECT count(*) FROM events)";

/// One `psql -f` job of the dataset generation.
#[derive(Debug, Clone)]
pub(super) struct GenJob {
    pub(super) sql: &'static str,
    pub(super) what: &'static str,
    pub(super) first: u64,
    pub(super) last: u64,
}

pub(super) fn split(sql: &'static str, what: &'static str, first: u64, last: u64, parts: u64) -> Vec<GenJob> {
    let n = last + 1 - first;
    let per = n.div_ceil(parts);
    (0..parts)
        .map(|p| (first + p * per, (first + (p + 1) * per - 1).min(last)))
        .filter(|(a, b)| a <= b)
        .map(|(a, b)| GenJob { sql, what, first: a, last: b })
        .collect()
}

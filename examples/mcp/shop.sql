-- The example gateway's shop: customers and orders of tenants acme and globex.
-- The gateway runs this file to create the database when it does not exist yet (tools.database.seed).
CREATE TABLE customers (id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, name TEXT NOT NULL, email TEXT NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, customer_id INTEGER NOT NULL REFERENCES customers(id), total REAL NOT NULL, status TEXT NOT NULL);
INSERT INTO customers VALUES
  (1, 'acme', 'Ada Lovelace', 'ada@acme.example'),
  (2, 'acme', 'Charles Babbage', 'charles@acme.example'),
  (3, 'globex', 'Grace Hopper', 'grace@globex.example'),
  (4, 'globex', 'Alan Turing', 'alan@globex.example');
INSERT INTO orders VALUES
  (101, 'acme', 1, 120.5, 'shipped'),
  (102, 'acme', 1, 35.0, 'open'),
  (103, 'acme', 2, 990.0, 'open'),
  (201, 'globex', 3, 42.0, 'shipped'),
  (202, 'globex', 4, 7.25, 'refunded');

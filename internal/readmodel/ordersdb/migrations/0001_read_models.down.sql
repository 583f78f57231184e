DROP TABLE IF EXISTS projection_checkpoints;
DROP TABLE IF EXISTS account_activity;
DROP TABLE IF EXISTS accounts_balance;
DROP TABLE IF EXISTS orders_view;

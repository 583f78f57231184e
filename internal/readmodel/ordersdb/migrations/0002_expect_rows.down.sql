DROP FUNCTION IF EXISTS readmodel_expect_rows(bigint, bigint);

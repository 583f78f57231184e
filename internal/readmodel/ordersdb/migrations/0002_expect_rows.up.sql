-- projector-orders writes a batch as one pipeline of conditional statements
-- (each changes a row only if it is at the version the batch continues) in
-- PostgreSQL's implicit transaction: one round trip, no BEGIN or COMMIT of
-- its own. The check that every row was at that version must then happen
-- in the server, since the implicit transaction commits at the end of the
-- pipeline, before the client has read a single result. Each statement
-- ends with readmodel_expect_rows(changed, expected), which raises
-- SQLSTATE RM409 on a mismatch: the error aborts the implicit transaction,
-- so nothing of the batch is written, and the projector falls back to the
-- path that reads the rows' versions first.
CREATE FUNCTION readmodel_expect_rows(changed bigint, expected bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    IF changed <> expected THEN
        RAISE EXCEPTION 'read model: % of % rows were at the version the batch continues', changed, expected
            USING ERRCODE = 'RM409';
    END IF;
    RETURN changed;
END
$$;

-- Each event keeps the shape (data layout) it was written in; rows written before this
-- column existed are shape 1. Readers upcast old shapes (thengine/domain/shapes.py).
-- Adding a column with a default rewrites no row.
ALTER TABLE events ADD COLUMN shape INTEGER NOT NULL DEFAULT 1 CHECK (shape >= 1);

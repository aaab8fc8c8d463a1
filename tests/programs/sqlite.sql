-- sqlite.sql: builds and queries a 150k-row table; deterministic output.
DROP TABLE IF EXISTS t;
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, payload BLOB);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 150000)
INSERT INTO t SELECT i, (i * 7919) % 97, printf('name-%08d-%s', (i * 2654435761) % 1000003, substr('abcdefghijklmnopqrstuvwxyz', 1 + i % 26)), zeroblob(i % 300) FROM n;
CREATE INDEX t_grp ON t(grp, name);
SELECT count(*), sum(length(name)), sum(length(payload)) FROM t;
SELECT grp, count(*), min(name), max(name) FROM t GROUP BY grp ORDER BY grp LIMIT 10;
UPDATE t SET name = name || '-' || name WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
SELECT count(*), sum(length(name)) FROM t;
SELECT group_concat(id) FROM (SELECT id FROM t WHERE grp = 42 ORDER BY name LIMIT 20);
SELECT count(DISTINCT name) FROM t;
SELECT hex(substr(name, 6, 4)), count(*) FROM t GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5;
VACUUM;
SELECT count(*) FROM t a JOIN t b ON a.id = b.id + 1 WHERE a.grp = b.grp + 1;

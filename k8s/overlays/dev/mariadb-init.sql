-- One database per process; the mesh user owns them all (dev only).
CREATE DATABASE IF NOT EXISTS mesh_coordinator;
CREATE DATABASE IF NOT EXISTS mesh_order;
CREATE DATABASE IF NOT EXISTS mesh_stock;
CREATE DATABASE IF NOT EXISTS mesh_pay;
CREATE DATABASE IF NOT EXISTS mesh_points;
GRANT ALL PRIVILEGES ON `mesh\_%`.* TO 'mesh'@'%';

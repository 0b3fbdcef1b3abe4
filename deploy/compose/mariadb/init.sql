-- One database and one least-privilege user per MySQL-backed service (DESIGN: no service
-- reads another's store). Run by the mariadb-init container on every `up` (init.sh), so it
-- is idempotent, and a changed password secret takes effect on the next `up`.
-- init.sh sets @order_password, @inventory_password and @payment_password from the
-- secrets first; the passwords never appear in this file. The services run their own
-- schema migrations at start-up, so each user holds every privilege on its own database
-- and none elsewhere.

CREATE DATABASE IF NOT EXISTS `order`;
SET @stmt = CONCAT('CREATE USER IF NOT EXISTS `order`@`%` IDENTIFIED BY ', QUOTE(@order_password));
PREPARE stmt FROM @stmt; EXECUTE stmt; DEALLOCATE PREPARE stmt;
SET @stmt = CONCAT('ALTER USER `order`@`%` IDENTIFIED BY ', QUOTE(@order_password));
PREPARE stmt FROM @stmt; EXECUTE stmt; DEALLOCATE PREPARE stmt;
GRANT ALL PRIVILEGES ON `order`.* TO `order`@`%`;

CREATE DATABASE IF NOT EXISTS `inventory`;
SET @stmt = CONCAT('CREATE USER IF NOT EXISTS `inventory`@`%` IDENTIFIED BY ', QUOTE(@inventory_password));
PREPARE stmt FROM @stmt; EXECUTE stmt; DEALLOCATE PREPARE stmt;
SET @stmt = CONCAT('ALTER USER `inventory`@`%` IDENTIFIED BY ', QUOTE(@inventory_password));
PREPARE stmt FROM @stmt; EXECUTE stmt; DEALLOCATE PREPARE stmt;
GRANT ALL PRIVILEGES ON `inventory`.* TO `inventory`@`%`;

CREATE DATABASE IF NOT EXISTS `payment`;
SET @stmt = CONCAT('CREATE USER IF NOT EXISTS `payment`@`%` IDENTIFIED BY ', QUOTE(@payment_password));
PREPARE stmt FROM @stmt; EXECUTE stmt; DEALLOCATE PREPARE stmt;
SET @stmt = CONCAT('ALTER USER `payment`@`%` IDENTIFIED BY ', QUOTE(@payment_password));
PREPARE stmt FROM @stmt; EXECUTE stmt; DEALLOCATE PREPARE stmt;
GRANT ALL PRIVILEGES ON `payment`.* TO `payment`@`%`;

package composecheck

import (
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/go-sql-driver/mysql"
)

// The init containers of deploy/compose and the files they run.
const (
	MariaDBInit   = "mariadb-init"   // runs /init/init.sh, which feeds /init/init.sql to MariaDB
	PostgresInit  = "postgres-init"  // runs psql on /init/init.sql with --set=<var>=<secret>
	CassandraInit = "cassandra-init" // runs /init/init.sh on /init/init.cql
)

var (
	sqlCreateDatabase = regexp.MustCompile("(?m)^CREATE DATABASE IF NOT EXISTS `(\\w+)`;")
	sqlCreateUser     = regexp.MustCompile("(?m)'CREATE USER IF NOT EXISTS `(\\w+)`@`%` IDENTIFIED BY ', QUOTE\\(@(\\w+)\\)")
	sqlGrant          = regexp.MustCompile("(?m)^GRANT ([A-Z ,]+) ON `(\\w+)`\\.\\* TO `(\\w+)`@`%`;")
	// init.sh: order_password=$(secret mariadb_order_password), then
	// printf "SET @order_password = '%s';\n" "$order_password"
	shVarFromSecret = regexp.MustCompile(`(?m)^(\w+)=\$\(secret (\w+)\)$`)
	shSetFromVar    = regexp.MustCompile(`SET @(\w+) = '%s';\\n" "\$(\w+)"`)

	pgCreateRole     = regexp.MustCompile(`(?m)^SELECT 'CREATE ROLE (\w+) LOGIN'`)
	pgRolePassword   = regexp.MustCompile(`(?m)^ALTER ROLE (\w+) WITH .*PASSWORD :'(\w+)';`)
	pgCreateDatabase = regexp.MustCompile(`(?m)^SELECT 'CREATE DATABASE (\w+) OWNER (\w+)'`)
	// postgres-init's command: --set=shipping_password="$(cat /run/secrets/postgres_shipping_password)"
	psqlSetFromSecret = regexp.MustCompile(`--set=(\w+)="\$\(cat /run/secrets/(\w+)\)"`)

	cqlCreateRole     = regexp.MustCompile(`(?m)^CREATE ROLE IF NOT EXISTS (\w+) WITH LOGIN = true`)
	cqlCreateKeyspace = regexp.MustCompile(`(?m)^CREATE KEYSPACE IF NOT EXISTS (\w+)`)
	cqlGrantKeyspace  = regexp.MustCompile(`(?m)^GRANT ALL PERMISSIONS ON KEYSPACE (\w+) TO (\w+);`)
	cqlReadsSecret    = regexp.MustCompile(`/run/secrets/(\w+)`)
)

// CheckStores checks the services' store credentials against the init
// containers: each MySQL DSN names a database init.sql creates, a user it
// creates and grants that database only, and the password of the secret the
// init gives that user; the shipping URI logs in as the PostgreSQL role
// postgres-init creates, with its secret's password, over SASL PLAIN (the
// only mechanism FerretDB v1 takes without its experimental new auth); the
// notification service's Cassandra role and keyspace are the ones
// cassandra-init creates and grants, with the password file it reads.
func CheckStores(p *types.Project, opts Options) []error {
	var problems []error
	add := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }
	for _, svc := range opts.Services {
		s, ok := p.Services[svc.Name]
		if !ok {
			continue // Check reports it
		}
		env, err := Environment(s)
		if err != nil {
			add("service %s: %v", s.Name, err)
			continue
		}
		if dsn, ok := env[svc.Prefix+"_MYSQL_DSN"]; ok {
			checkMySQL(p, s.Name, dsn, add)
		}
		if uri, ok := env[svc.Prefix+"_MONGO_URI"]; ok {
			checkFerretDB(p, s.Name, uri, add)
		}
		if _, ok := env[svc.Prefix+"_CASSANDRA_HOSTS"]; ok {
			checkCassandra(p, s, svc.Prefix, env, add)
		}
	}
	return problems
}

func checkMySQL(p *types.Project, name, dsn string, add func(string, ...any)) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		add("service %s: MySQL DSN: %v", name, err)
		return
	}
	checkHost(p, name, hostOf(cfg.Addr), add)
	sql, script, err := initFiles(p, MariaDBInit, "/init/init.sql", "/init/init.sh")
	if err != nil {
		add("service %s: %v", name, err)
		return
	}
	if !slices.ContainsFunc(sqlCreateDatabase.FindAllStringSubmatch(sql, -1), func(m []string) bool { return m[1] == cfg.DBName }) {
		add("service %s: database %q of its DSN is not created by %s", name, cfg.DBName, MariaDBInit)
	}
	var passwordVar string
	for _, m := range sqlCreateUser.FindAllStringSubmatch(sql, -1) {
		if m[1] == cfg.User {
			passwordVar = m[2]
		}
	}
	if passwordVar == "" {
		add("service %s: user %q of its DSN is not created by %s", name, cfg.User, MariaDBInit)
		return
	}
	var granted []string
	for _, m := range sqlGrant.FindAllStringSubmatch(sql, -1) {
		if m[3] == cfg.User {
			granted = append(granted, m[2])
		}
	}
	if !slices.Equal(granted, []string{cfg.DBName}) {
		add("service %s: %s grants user %s the databases %v, want exactly [%s]", name, MariaDBInit, cfg.User, granted, cfg.DBName)
	}
	shellVar, secret := "", ""
	for _, m := range shSetFromVar.FindAllStringSubmatch(script, -1) {
		if m[1] == passwordVar {
			shellVar = m[2]
		}
	}
	for _, m := range shVarFromSecret.FindAllStringSubmatch(script, -1) {
		if shellVar != "" && m[1] == shellVar {
			secret = m[2]
		}
	}
	if secret == "" {
		add("service %s: %s's init.sh does not set @%s from a secret", name, MariaDBInit, passwordVar)
		return
	}
	checkSecretValue(p, name, MariaDBInit, secret, cfg.Passwd, "its DSN's password", add)
}

func checkFerretDB(p *types.Project, name, uri string, add func(string, ...any)) {
	u, err := url.Parse(uri)
	if err != nil || u.User == nil {
		add("service %s: MongoDB URI needs a user and password (%v)", name, err)
		return
	}
	checkHost(p, name, u.Hostname(), add)
	if got := u.Query().Get("authMechanism"); got != "PLAIN" {
		add("service %s: MongoDB URI authMechanism=%q, want PLAIN (FerretDB v1 passes the login to PostgreSQL)", name, got)
	}
	password, _ := u.User.Password()
	user := u.User.Username()
	sql, _, err := initFiles(p, PostgresInit, "/init/init.sql", "")
	if err != nil {
		add("service %s: %v", name, err)
		return
	}
	if !slices.ContainsFunc(pgCreateRole.FindAllStringSubmatch(sql, -1), func(m []string) bool { return m[1] == user }) {
		add("service %s: role %q of its MongoDB URI is not created by %s", name, user, PostgresInit)
	}
	passwordVar := ""
	for _, m := range pgRolePassword.FindAllStringSubmatch(sql, -1) {
		if m[1] == user {
			passwordVar = m[2]
		}
	}
	// FerretDB keeps its data in the database its URL names: the role must own it.
	ferret, ok := p.Services[u.Hostname()]
	if ok && ferret.Environment["FERRETDB_POSTGRESQL_URL"] != nil {
		pg, err := url.Parse(*ferret.Environment["FERRETDB_POSTGRESQL_URL"])
		db := ""
		if err == nil {
			db = strings.TrimPrefix(pg.Path, "/")
		}
		if !slices.ContainsFunc(pgCreateDatabase.FindAllStringSubmatch(sql, -1), func(m []string) bool { return m[1] == db && m[2] == user }) {
			add("service %s: %s does not create FerretDB's database %q owned by %s", name, PostgresInit, db, user)
		}
	}
	if passwordVar == "" {
		add("service %s: %s sets no password for role %s", name, PostgresInit, user)
		return
	}
	secret := ""
	for _, m := range psqlSetFromSecret.FindAllStringSubmatch(strings.Join(p.Services[PostgresInit].Command, " "), -1) {
		if m[1] == passwordVar {
			secret = m[2]
		}
	}
	if secret == "" {
		add("service %s: %s's command does not set %s from a secret", name, PostgresInit, passwordVar)
		return
	}
	checkSecretValue(p, name, PostgresInit, secret, password, "its MongoDB URI's password", add)
}

func checkCassandra(p *types.Project, s types.ServiceConfig, prefix string, env map[string]string, add func(string, ...any)) {
	name := s.Name
	for _, h := range strings.Split(env[prefix+"_CASSANDRA_HOSTS"], ",") {
		checkHost(p, name, hostOf(h), add)
	}
	user, keyspace := env[prefix+"_CASSANDRA_USERNAME"], env[prefix+"_CASSANDRA_KEYSPACE"]
	if user == "" || keyspace == "" {
		add("service %s: set %s_CASSANDRA_USERNAME and %s_CASSANDRA_KEYSPACE (the role and keyspace %s creates)", name, prefix, prefix, CassandraInit)
		return
	}
	cql, script, err := initFiles(p, CassandraInit, "/init/init.cql", "/init/init.sh")
	if err != nil {
		add("service %s: %v", name, err)
		return
	}
	if !slices.ContainsFunc(cqlCreateRole.FindAllStringSubmatch(cql, -1), func(m []string) bool { return m[1] == user }) {
		add("service %s: Cassandra role %q is not created by %s", name, user, CassandraInit)
	}
	if !slices.ContainsFunc(cqlCreateKeyspace.FindAllStringSubmatch(cql, -1), func(m []string) bool { return m[1] == keyspace }) {
		add("service %s: keyspace %q is not created by %s", name, keyspace, CassandraInit)
	}
	if !slices.ContainsFunc(cqlGrantKeyspace.FindAllStringSubmatch(cql, -1), func(m []string) bool { return m[1] == keyspace && m[2] == user }) {
		add("service %s: %s grants role %s nothing on keyspace %s", name, CassandraInit, user, keyspace)
	}
	file := env[prefix+"_CASSANDRA_PASSWORD_FILE"]
	secret, ok := strings.CutPrefix(file, "/run/secrets/")
	if !ok {
		add("service %s: %s_CASSANDRA_PASSWORD_FILE=%q, want a compose secret (/run/secrets/…)", name, prefix, file)
		return
	}
	m := cqlReadsSecret.FindStringSubmatch(script)
	if m == nil || m[1] != secret {
		add("service %s: %s does not set the role's password from secret %s", name, CassandraInit, secret)
		return
	}
	if !slices.ContainsFunc(p.Services[CassandraInit].Secrets, func(sec types.ServiceSecretConfig) bool { return sec.Source == secret }) {
		add("service %s: %s does not mount secret %s", name, CassandraInit, secret)
	}
}

// checkSecretValue: the init mounts the secret and its file holds want.
func checkSecretValue(p *types.Project, name, init, secret, want, what string, add func(string, ...any)) {
	if !slices.ContainsFunc(p.Services[init].Secrets, func(s types.ServiceSecretConfig) bool { return s.Source == secret }) {
		add("service %s: %s does not mount secret %s", name, init, secret)
		return
	}
	def, ok := p.Secrets[secret]
	if !ok || def.File == "" {
		add("service %s: secret %s has no file", name, secret)
		return
	}
	b, err := os.ReadFile(def.File)
	if err != nil {
		add("service %s: secret %s: %v", name, secret, err)
		return
	}
	if got := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"); got != want {
		add("service %s: secret %s (what %s gives the store user) differs from %s", name, secret, init, what)
	}
}

// checkHost: a store address names a compose service.
func checkHost(p *types.Project, name, host string, add func(string, ...any)) {
	if _, ok := p.Services[host]; !ok {
		add("service %s: store host %q is no service of the file", name, host)
	}
}

func hostOf(addr string) string {
	if i := strings.LastIndex(addr, ":"); i >= 0 {
		return addr[:i]
	}
	return addr
}

// initFiles reads the files an init service bind-mounts at the given targets
// (second target optional).
func initFiles(p *types.Project, init, first, second string) (string, string, error) {
	s, ok := p.Services[init]
	if !ok {
		return "", "", fmt.Errorf("no %s service", init)
	}
	read := func(target string) (string, error) {
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind && v.Target == target {
				b, err := os.ReadFile(v.Source)
				return string(b), err
			}
		}
		return "", fmt.Errorf("%s mounts nothing at %s", init, target)
	}
	a, err := read(first)
	if err != nil || second == "" {
		return a, "", err
	}
	b, err := read(second)
	return a, b, err
}

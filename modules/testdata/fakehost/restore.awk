# restore.awk is fake.sh's iptables-restore --noflush: it reads the
# kernel's tables from the file named by the variable live (canonical
# iptables-save text), applies the input's commands to them as
# iptables-restore does, and prints the tables it leaves, or fails with
# iptables-restore's words and prints nothing.
#
# Declaring a built-in chain sets its policy; declaring a user chain makes
# it, or empties it if it is there. -A appends, -D deletes the first
# identical rule, -F empties a chain, -X deletes an empty chain nothing
# jumps to.
BEGIN {
	while ((getline line < live) > 0)
		apply(line, 0)
	close(live)
	n = 0
}
{
	n++
	apply($0, n)
}
END {
	if (failed)
		exit 1
	for (i = 1; i <= ntables; i++) {
		tb = tables[i]
		sortchains(tb)
		print "*" tb
		for (j = 1; j <= nchains[tb]; j++)
			print ":" chains[tb, j] " " policy[tb, chains[tb, j]] " [0:0]"
		for (j = 1; j <= nchains[tb]; j++) {
			c = chains[tb, j]
			for (k = 1; k <= nrules[tb, c]; k++)
				print "-A " c (rules[tb, c, k] == "" ? "" : " " rules[tb, c, k])
		}
		print "COMMIT"
	}
}

# sortchains orders a table's chains as iptables-save lists them: the
# built-in chains first, as they came, then the user chains by name.
function sortchains(tb,    i, j, c) {
	for (i = 2; i <= nchains[tb]; i++) {
		c = chains[tb, i]
		for (j = i - 1; j >= 1 && later(chains[tb, j], c, tb); j--)
			chains[tb, j + 1] = chains[tb, j]
		chains[tb, j + 1] = c
	}
}

function later(a, b, tb) {
	if (policy[tb, a] != "-")
		return 0
	return policy[tb, b] != "-" || a > b
}

function fail(lineno, why) {
	if (!failed)
		printf "iptables-restore: line %d failed: %s\n", lineno, why > "/dev/stderr"
	failed = 1
}

function has(tb, c) { return (tb SUBSEP c) in policy }

function apply(line, lineno,    f, c, spec, sp, i, j) {
	if (failed || line == "" || line ~ /^#/ || line == "COMMIT")
		return
	if (line ~ /^\*/) {
		t = substr(line, 2)
		if (!(t in known)) {
			known[t] = 1
			tables[++ntables] = t
		}
		return
	}
	if (line ~ /^:/) {
		split(line, f, " ")
		c = substr(f[1], 2)
		if (!has(t, c))
			chains[t, ++nchains[t]] = c
		else if (f[2] == "-")
			nrules[t, c] = 0
		policy[t, c] = f[2]
		return
	}
	split(line, f, " ")
	c = f[2]
	sp = index(substr(line, 4), " ")
	spec = sp ? substr(line, 4 + sp) : ""
	if (!has(t, c)) {
		fail(lineno, "chain " c " does not exist")
		return
	}
	if (f[1] == "-A") {
		rules[t, c, ++nrules[t, c]] = spec
	} else if (f[1] == "-D") {
		for (i = 1; i <= nrules[t, c]; i++)
			if (rules[t, c, i] == spec)
				break
		if (i > nrules[t, c]) {
			fail(lineno, "Bad rule (does a matching rule exist in that chain?)")
			return
		}
		for (; i < nrules[t, c]; i++)
			rules[t, c, i] = rules[t, c, i + 1]
		nrules[t, c]--
	} else if (f[1] == "-F") {
		nrules[t, c] = 0
	} else if (f[1] == "-X") {
		if (nrules[t, c] > 0) {
			fail(lineno, "Directory not empty")
			return
		}
		for (i = 1; i <= nchains[t]; i++)
			for (j = 1; j <= nrules[t, chains[t, i]]; j++)
				if ((" " rules[t, chains[t, i], j] " ") ~ (" -[jg] " c " "))
					fail(lineno, "Too many links")
		for (i = 1; i <= nchains[t]; i++)
			if (chains[t, i] == c)
				break
		for (; i < nchains[t]; i++)
			chains[t, i] = chains[t, i + 1]
		nchains[t]--
		delete policy[t, c]
	} else {
		fail(lineno, "unknown command " f[1])
	}
}

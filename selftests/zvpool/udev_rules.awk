# SPDX-License-Identifier: GPL-2.0
# A udev rules interpreter for the guest, which has no udev: applies a rules
# file to the uevent in the environment (ACTION, DEVPATH, SUBSYSTEM,
# DEVNAME, ZVPOOL_* ...: what the kernel hands a uevent helper) as udev
# would, for the subset of the rules syntax udev/60-zvpool.rules uses:
#   match keys   ACTION, SUBSYSTEM, KERNEL, ENV{X}, ATTR{x} with == and !=
#                (glob patterns: * ? [...] and a|b alternatives)
#   assignments  ENV{X}=, SYMLINK+=, IMPORT{program}=, GOTO=, LABEL=
#   substitutions $env{X}, $attr{x}, %k
# Anything else in the file is an error (exit 2), so that the rule cannot
# grow past what the tests exercise. Prints "ENV X=VALUE" for every
# variable the rules set or import and "LINK PATH" for every symlink; with
# ROOT set, also creates ROOT/dev/PATH -> /dev/DEVNAME (replacing a link
# there). Unlike udev it keeps no database: the links of a removed device
# stay until another device's event replaces them, so a test looks only at
# links made after the device's last add.
#
# Usage: env ACTION=... DEVPATH=... awk -f udev_rules.awk RULES-FILE
function die(msg) {
	print "udev_rules.awk: " FILENAME ":" FNR ": " msg > "/dev/stderr"
	failed = 1
	exit 2
}
function trim(s) {
	sub(/^[ \t]+/, "", s)
	sub(/[ \t\n]+$/, "", s)
	return s
}
function attr(name, line, f) {
	f = (ENVIRON["SYSFS"] != "" ? ENVIRON["SYSFS"] : "/sys") ENVIRON["DEVPATH"] "/" name
	line = ""
	if ((getline line < f) > 0)
		line = trim(line)
	close(f)
	return line
}
function envval(name) {
	return (name in env) ? env[name] : ""
}
function subst(s, out, m, k) {
	out = ""
	while (match(s, /\$env\{[A-Za-z0-9_]+\}|\$attr\{[A-Za-z0-9_]+\}|%k/)) {
		out = out substr(s, 1, RSTART - 1)
		m = substr(s, RSTART, RLENGTH)
		if (m == "%k")
			out = out kernel
		else if (m ~ /^\$env/)
			out = out envval(substr(m, 6, length(m) - 6))
		else
			out = out attr(substr(m, 7, length(m) - 7))
		s = substr(s, RSTART + RLENGTH)
	}
	return out s
}
# One glob pattern (no |) as an anchored regular expression.
function glob_re(p, r, i, c, k) {
	r = "^"
	for (i = 1; i <= length(p); i++) {
		c = substr(p, i, 1)
		if (c == "*")
			r = r ".*"
		else if (c == "?")
			r = r "."
		else if (c == "[") {
			k = index(substr(p, i), "]")
			if (!k)
				die("unterminated [ in pattern " p)
			r = r substr(p, i, k)
			i += k - 1
		} else if (c ~ /[A-Za-z0-9_\/ -]/)
			r = r c
		else
			r = r "\\" c
	}
	return r "$"
}
function globmatch(v, pat, n, alts, i) {
	n = split(pat, alts, "|")
	for (i = 1; i <= n; i++)
		if (v ~ glob_re(alts[i]))
			return 1
	return 0
}
# IMPORT{program}: KEY=VALUE lines of its output, if it exits with 0.
function import_program(cmd, line, k, v, n, i, lines) {
	n = 0
	while ((cmd | getline line) > 0)
		lines[++n] = line
	if (close(cmd) != 0)
		return
	for (i = 1; i <= n; i++) {
		k = index(lines[i], "=")
		if (k < 2)
			continue
		v = substr(lines[i], k + 1)
		if (v ~ /^".*"$/ || v ~ /^'.*'$/)
			v = substr(v, 2, length(v) - 2)
		setenv(substr(lines[i], 1, k - 1), v)
	}
}
function setenv(name, v) {
	env[name] = v
	if (!(name in shown)) {
		order[++norder] = name
		shown[name] = 1
	}
}
BEGIN {
	for (k in ENVIRON)
		env[k] = ENVIRON[k]
	kernel = ENVIRON["DEVPATH"]
	sub(/.*\//, "", kernel)
	skip_to = ""
}
/^[ \t]*(#|$)/ { next }
{
	line = $0
	if (line ~ /\\$/)
		die("continuation lines are not supported")
	if (skip_to != "") {
		if (line ~ /^LABEL="/ && line == "LABEL=\"" skip_to "\"")
			skip_to = ""
		next
	}
	ok = 1
	while (ok && line != "") {
		line = trim(line)
		if (!match(line, /^[A-Z_]+(\{[A-Za-z0-9_]+\})?(==|!=|\+=|=)"[^"]*"/))
			die("cannot parse: " line)
		tok = substr(line, 1, RLENGTH)
		line = substr(line, RLENGTH + 1)
		sub(/^[ \t]*,?[ \t]*/, "", line)
		match(tok, /(==|!=|\+=|=)"/)
		op = substr(tok, RSTART, RLENGTH - 1)
		key = substr(tok, 1, RSTART - 1)
		val = substr(tok, RSTART + RLENGTH, length(tok) - RSTART - RLENGTH)
		arg = ""
		if (match(key, /\{.*\}/)) {
			arg = substr(key, RSTART + 1, RLENGTH - 2)
			key = substr(key, 1, RSTART - 1)
		}
		if (op == "==" || op == "!=") {
			if (key == "ACTION" || key == "SUBSYSTEM")
				v = envval(key)
			else if (key == "KERNEL")
				v = kernel
			else if (key == "ENV")
				v = envval(arg)
			else if (key == "ATTR")
				v = attr(arg)
			else
				die("unsupported match key " key)
			ok = globmatch(v, val) == (op == "==")
		} else if (key == "ENV" && op == "=") {
			setenv(arg, subst(val))
		} else if (key == "SYMLINK" && op == "+=") {
			links[++nlinks] = subst(val)
		} else if (key == "IMPORT" && arg == "program" && op == "=") {
			import_program(subst(val))
		} else if (key == "GOTO" && op == "=") {
			skip_to = val
			ok = 0
		} else if (key == "LABEL" && op == "=") {
			# A label line: nothing to do.
		} else
			die("unsupported key " key (arg != "" ? "{" arg "}" : "") op)
	}
}
END {
	if (failed)
		exit 2
	for (i = 1; i <= norder; i++)
		print "ENV " order[i] "=" env[order[i]]
	for (i = 1; i <= nlinks; i++) {
		print "LINK " links[i]
		if (ENVIRON["ROOT"] != "" && ENVIRON["DEVNAME"] != "") {
			l = ENVIRON["ROOT"] "/dev/" links[i]
			d = l
			sub(/\/[^\/]*$/, "", d)
			system("mkdir -p '" d "' && ln -sfn '/dev/" ENVIRON["DEVNAME"] "' '" l "'")
		}
	}
}

<?php
// This file is part of the riskstream Moodle plugin.
//
// This program is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.

/**
 * One command for an administrator: web services on, the connector's user, role and token.
 *
 * Usage: php local/riskstream/cli/setup.php [--username=riskstream] [--rotate-token]
 * Prints the token once (as RISKSTREAM_MOODLE_TOKEN=...); a second run repairs the role and
 * authorisation and prints no token unless --rotate-token replaces it.
 *
 * @package    local_riskstream
 * @copyright  2026 riskstream
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

define('CLI_SCRIPT', true);

require(__DIR__ . '/../../../config.php');
require_once($CFG->libdir . '/clilib.php');

[$options, $unrecognised] = cli_get_params(
    ['username' => 'riskstream', 'rotate-token' => false, 'help' => false],
    ['u' => 'username', 'h' => 'help']
);
if ($unrecognised) {
    cli_error('Unknown option(s): ' . implode(', ', $unrecognised) . '. Try --help.');
}
if ($options['help']) {
    echo "Set up the RiskStream connector's service user.

Enables web services and the REST protocol, creates (or repairs) the user, a system role
'" . \local_riskstream\service_user::ROLE . "' with exactly the capabilities the connector needs,
authorises the user on the 'RiskStream connector' service and prints a token once.

Options:
  --username=NAME   service user (default riskstream)
  --rotate-token    replace the user's token for the service and print the new one
  -h, --help        this help
";
    exit(0);
}
$username = core_user::clean_field(trim((string)$options['username']), 'username');
if ($username === '') {
    cli_error('--username must not be empty');
}

\core\session\manager::set_user(get_admin());
$result = \local_riskstream\service_user::setup($username, (bool)$options['rotate-token']);
$user = $result['user'];
cli_writeln(($result['created'] ? 'created' : 'kept') . " user '{$user->username}' (id {$user->id})");
cli_writeln("role '" . \local_riskstream\service_user::ROLE . "' (id {$result['roleid']}) at system level with:");
foreach (\local_riskstream\service_user::CAPABILITIES as $cap => $why) {
    cli_writeln("  $cap  ($why)");
}
cli_writeln("web services and REST enabled; user authorised on service '" . \local_riskstream\service_user::SERVICE . "'");
$missing = \local_riskstream\service_user::missing((int)$user->id);
if ($missing) {
    cli_problem('the user still lacks ' . implode(', ', $missing) . ' (a prohibit in another role?)');
}
if ($result['token'] === null) {
    cli_writeln('a token already exists for this user and service (shown only when created); ' .
        'use --rotate-token to replace it');
} else {
    cli_writeln('token (shown once; store it as RISKSTREAM_MOODLE_TOKEN):');
    cli_writeln('RISKSTREAM_MOODLE_TOKEN=' . $result['token']);
}
exit($missing ? 1 : 0);

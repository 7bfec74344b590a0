<?php
// Admin actions the real-Moodle suite needs between web-service calls (caches cleared properly).
// php admin.php --unassign=CAP --role=SHORTNAME | --unenrol=USERID --course=ID | --notifications=USERID
define('CLI_SCRIPT', true);
require(getenv('MOODLE_DIR') . '/config.php');
require_once($CFG->libdir . '/clilib.php');
require_once($CFG->libdir . '/enrollib.php');

[$o] = cli_get_params(['assign' => '', 'unassign' => '', 'role' => 'riskstreamconnector', 'unenrol' => 0, 'course' => 0,
    'notifications' => 0, 'unsetpref' => '', 'user' => 0]);
\core\session\manager::set_user(get_admin());
$system = context_system::instance();
if ($o['unassign']) {
    $roleid = $DB->get_field('role', 'id', ['shortname' => $o['role']], MUST_EXIST);
    unassign_capability($o['unassign'], $roleid, $system->id);
    accesslib_clear_all_caches(true);
    echo json_encode(['unassigned' => $o['unassign']]), "\n";
}
if ($o['assign']) {
    $roleid = $DB->get_field('role', 'id', ['shortname' => $o['role']], MUST_EXIST);
    assign_capability($o['assign'], CAP_ALLOW, $roleid, $system->id, true);
    accesslib_clear_all_caches(true);
    echo json_encode(['assigned' => $o['assign']]), "\n";
}
if ($o['unenrol']) {
    $instance = $DB->get_record('enrol', ['courseid' => $o['course'], 'enrol' => 'manual'], '*', MUST_EXIST);
    enrol_get_plugin('manual')->unenrol_user($instance, (int)$o['unenrol']);
    echo json_encode(['unenrolled' => (int)$o['unenrol']]), "\n";
}
if ($o['unsetpref']) {
    unset_user_preference($o['unsetpref'], (int)$o['user']);
    echo json_encode(['unset' => $o['unsetpref']]), "\n";
}
if ($o['notifications']) {
    $rows = $DB->get_records('notifications', ['useridto' => $o['notifications'], 'component' => 'local_riskstream'],
        'id ASC', 'id, eventtype, subject, fullmessage, fullmessagehtml, smallmessage, contexturl');
    echo json_encode(array_values($rows)), "\n";
}

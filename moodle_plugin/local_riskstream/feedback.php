<?php
// This file is part of the riskstream Moodle plugin.
//
// This program is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.


/**
 * A teacher's feedback on one alert: confirm (from a notification link), then record.
 *
 * @package    local_riskstream
 * @copyright  2026 riskstream
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

require_once(__DIR__ . '/../../config.php');

$alertid = required_param('alert', PARAM_ALPHANUMEXT);
$action = required_param('action', PARAM_ALPHA);
$confirm = optional_param('confirm', 0, PARAM_BOOL);

$alert = $DB->get_record('local_riskstream_alerts', ['alertid' => $alertid], '*', MUST_EXIST);
$course = get_course($alert->courseid);
require_login($course);
$context = context_course::instance($course->id);
require_capability('local/riskstream:viewalerts', $context);
if (!in_array($action, \local_riskstream\feedback::ACTIONS, true)) {
    throw new moodle_exception('invalidparameter', 'debug');
}
$back = new moodle_url('/local/riskstream/index.php', ['id' => $course->id]);
$label = get_string('feedback_' . $action, 'local_riskstream');

if ($confirm && confirm_sesskey()) {
    \local_riskstream\feedback::record($alertid, $action, (int)$USER->id);
    redirect($back, get_string('feedbacksaved', 'local_riskstream', $label), null, \core\output\notification::NOTIFY_SUCCESS);
}

$PAGE->set_url(new moodle_url('/local/riskstream/feedback.php', ['alert' => $alertid, 'action' => $action]));
$PAGE->set_context($context);
$PAGE->set_pagelayout('report');
$PAGE->set_title(get_string('alertspage', 'local_riskstream'));
$PAGE->set_heading(format_string($course->fullname, true, ['context' => $context]));
$student = $DB->get_record('user', ['id' => $alert->userid], '*', IGNORE_MISSING);
$question = get_string('feedbackconfirm', 'local_riskstream', (object)[
    'student' => $student ? fullname($student) : get_string('unknownuser', 'local_riskstream'),
    'level' => get_string('level_' . $alert->level, 'local_riskstream'),
    'when' => userdate($alert->timecreated),
    'action' => $label,
]);
$yes = new moodle_url('/local/riskstream/feedback.php',
    ['alert' => $alertid, 'action' => $action, 'confirm' => 1, 'sesskey' => sesskey()]);
echo $OUTPUT->header();
echo $OUTPUT->confirm(s($question), new single_button($yes, $label, 'post'), $back);
echo $OUTPUT->footer();

<?php
// This file is part of the riskstream Moodle plugin.
//
// This program is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.


/**
 * Current risk alerts of one course: student, risk, level, when, and why in words.
 *
 * @package    local_riskstream
 * @copyright  2026 riskstream
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

require_once(__DIR__ . '/../../config.php');

$courseid = required_param('id', PARAM_INT);
$course = get_course($courseid);
require_login($course);
$context = context_course::instance($course->id);
require_capability('local/riskstream:viewalerts', $context);

$PAGE->set_url(new moodle_url('/local/riskstream/index.php', ['id' => $course->id]));
$PAGE->set_context($context);
$PAGE->set_pagelayout('report');
$PAGE->set_title(get_string('alertspage', 'local_riskstream'));
$PAGE->set_heading(format_string($course->fullname, true, ['context' => $context]));

$mode = optional_param('digest', '', PARAM_ALPHA);
if (($mode === 'digest' || $mode === 'each') && confirm_sesskey()) {
    set_user_preference(\local_riskstream\digest::PREF, $mode);
}

$days = (int)get_config('local_riskstream', 'showdays') ?: 28;
$since = time() - $days * DAYSECS;
// Current = the latest alert per student within the window.
$sql = "SELECT a.*
          FROM {local_riskstream_alerts} a
          JOIN (SELECT userid, MAX(id) AS maxid
                  FROM {local_riskstream_alerts}
                 WHERE courseid = :c1 AND timecreated >= :since
              GROUP BY userid) latest ON latest.maxid = a.id
         WHERE a.courseid = :c2
      ORDER BY a.risk DESC";
$alerts = $DB->get_records_sql($sql, ['c1' => $course->id, 'c2' => $course->id, 'since' => $since]);

echo $OUTPUT->header();
echo $OUTPUT->heading(get_string('alertspage', 'local_riskstream'));
if (!$alerts) {
    echo $OUTPUT->notification(get_string('noalerts', 'local_riskstream'), 'info');
} else {
    $userids = array_map(fn($a) => $a->userid, $alerts);
    $users = $DB->get_records_list('user', 'id', $userids);
    $table = new html_table();
    $table->head = [
        get_string('colstudent', 'local_riskstream'),
        get_string('colrisk', 'local_riskstream'),
        get_string('collevel', 'local_riskstream'),
        get_string('colwhen', 'local_riskstream'),
        get_string('colexplanation', 'local_riskstream'),
        get_string('colfeedback', 'local_riskstream'),
    ];
    $latest = \local_riskstream\feedback::latest_in_course($course->id);
    $teachers = $latest ? $DB->get_records_list('user', 'id', array_map(fn($f) => $f->teacherid, $latest)) : [];
    foreach ($alerts as $a) {
        $name = isset($users[$a->userid]) ? fullname($users[$a->userid]) : get_string('unknownuser', 'local_riskstream');
        $profile = new moodle_url('/user/view.php', ['id' => $a->userid, 'course' => $course->id]);
        $table->data[] = [
            html_writer::link($profile, s($name)),
            format_float($a->risk * 100, 0) . '%',
            get_string('level_' . $a->level, 'local_riskstream'),
            userdate($a->timecreated),
            s($a->explanation),
            local_riskstream_feedback_cell($a, $latest[$a->alertid] ?? null, $teachers),
        ];
    }
    echo html_writer::table($table);
}
$use = \local_riskstream\feedback::usefulness($course->id);
if ($use['answered']) {
    echo html_writer::tag('p', s(get_string('usefulshare', 'local_riskstream', (object)[
        'useful' => $use['useful'], 'answered' => $use['answered'], 'alerts' => $use['alerts'],
        'percent' => round($use['share'] * 100),
    ])), ['class' => 'local-riskstream-usefulness', 'data-share' => format_float($use['share'], 3)]);
}
$digest = \local_riskstream\digest::wants_digest((int)$USER->id, (int)$course->id);
echo html_writer::tag('p', get_string('digestmode_' . ($digest ? 'digest' : 'each'), 'local_riskstream'),
    ['class' => 'local-riskstream-digest', 'data-digest' => (int)$digest]);
$other = $digest ? 'each' : 'digest';
echo $OUTPUT->single_button(new moodle_url('/local/riskstream/index.php',
    ['id' => $course->id, 'digest' => $other, 'sesskey' => sesskey()]),
    get_string('digestchoose_' . $other, 'local_riskstream'), 'post');
echo $OUTPUT->footer();

/**
 * The feedback column: the latest answer, and one button per answer (posted with sesskey).
 *
 * @param stdClass $alert
 * @param stdClass|null $latest
 * @param array $teachers
 * @return string HTML
 */
function local_riskstream_feedback_cell(stdClass $alert, ?stdClass $latest, array $teachers): string {
    global $OUTPUT;
    $out = '';
    if ($latest) {
        $out .= html_writer::div(s(get_string('feedbacklatest', 'local_riskstream', (object)[
            'action' => get_string('feedback_' . $latest->action, 'local_riskstream'),
            'teacher' => isset($teachers[$latest->teacherid]) ? fullname($teachers[$latest->teacherid]) : '',
            'when' => userdate($latest->timecreated),
        ])), 'local-riskstream-feedback', ['data-action' => $latest->action]);
    }
    foreach (\local_riskstream\feedback::ACTIONS as $action) {
        $url = new moodle_url('/local/riskstream/feedback.php',
            ['alert' => $alert->alertid, 'action' => $action, 'confirm' => 1, 'sesskey' => sesskey()]);
        $out .= $OUTPUT->single_button($url, get_string('feedback_' . $action, 'local_riskstream'), 'post');
    }
    return $out;
}

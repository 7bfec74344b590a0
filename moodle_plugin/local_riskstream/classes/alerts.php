<?php
// This file is part of the riskstream Moodle plugin.
//
// This program is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.


namespace local_riskstream;

use context_course;
use core\message\message;
use moodle_url;
use stdClass;

/**
 * Storing alerts and telling the course's teachers.
 *
 * @package    local_riskstream
 * @copyright  2026 riskstream
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class alerts {
    /** Table of stored alerts. */
    const TABLE = 'local_riskstream_alerts';

    /**
     * Insert the alert unless its id is known; notify teachers of new alerts only.
     *
     * @param stdClass $alert fields of push_alerts' alert structure
     * @return array [status 'stored'|'duplicate', teachers notified]
     */
    public static function store_and_notify(stdClass $alert): array {
        global $DB;
        if ($DB->record_exists(self::TABLE, ['alertid' => $alert->alertid])) {
            return ['duplicate', 0];
        }
        $record = (object)[
            'alertid' => $alert->alertid,
            'courseid' => $alert->courseid,
            'userid' => $alert->userid,
            'risk' => $alert->risk,
            'level' => $alert->level,
            'threshold' => $alert->threshold,
            'modelversion' => $alert->modelversion,
            'day' => $alert->day,
            'explanation' => $alert->explanation,
            'timecreated' => $alert->timecreated ?: time(),
            'timereceived' => time(),
        ];
        try {
            $record->id = $DB->insert_record(self::TABLE, $record);
        } catch (\dml_write_exception $e) {
            // A concurrent push of the same id won the unique index: still a duplicate.
            if ($DB->record_exists(self::TABLE, ['alertid' => $alert->alertid])) {
                return ['duplicate', 0];
            }
            throw $e;
        }
        if (!get_config('local_riskstream', 'notifyteachers')) {
            return ['stored', 0];
        }
        return ['stored', self::notify($record)];
    }

    /**
     * Message every user who may view alerts in the course (teachers by default).
     *
     * @param stdClass $record stored alert
     * @return int number of messages sent
     */
    public static function notify(stdClass $record): int {
        global $DB;
        $context = context_course::instance($record->courseid);
        $course = get_course($record->courseid);
        $student = $DB->get_record('user', ['id' => $record->userid], '*', IGNORE_MISSING);
        $teachers = get_enrolled_users($context, 'local/riskstream:viewalerts', 0, 'u.*', null, 0, 0, true);
        $url = new moodle_url('/local/riskstream/index.php', ['id' => $record->courseid]);
        // Plain text gets the words as they are (no HTML entities); the HTML body escapes them.
        $a = (object)[
            'student' => $student ? fullname($student) : get_string('unknownuser', 'local_riskstream'),
            'course' => format_string($course->fullname, true, ['context' => $context, 'escape' => false]),
            'level' => get_string('level_' . $record->level, 'local_riskstream'),
            'risk' => round($record->risk * 100),
            'explanation' => clean_param((string)$record->explanation, PARAM_TEXT),
            'url' => $url->out(false),
        ];
        $links = [];
        foreach (feedback::ACTIONS as $action) {
            $links[$action] = feedback::url($record->alertid, $action)->out(false);
        }
        $a->feedback = implode("\n", array_map(fn($act) => '- ' . get_string('feedback_' . $act, 'local_riskstream') .
            ': ' . $links[$act], feedback::ACTIONS));
        $h = (object)array_map(fn($v) => s($v), (array)$a);
        $h->feedback = implode(' | ', array_map(fn($act) => \html_writer::link($links[$act],
            get_string('feedback_' . $act, 'local_riskstream')), feedback::ACTIONS));
        $sent = 0;
        foreach ($teachers as $teacher) {
            if (digest::wants_digest((int)$teacher->id, (int)$record->courseid)) {
                continue; // In tomorrow's digest instead.
            }
            $message = new message();
            $message->component = 'local_riskstream';
            $message->name = 'riskalert';
            $message->userfrom = \core_user::get_noreply_user();
            $message->userto = $teacher;
            $message->courseid = $record->courseid;
            $message->subject = get_string('alertsubject', 'local_riskstream', $a);
            $message->fullmessage = get_string('alertbody', 'local_riskstream', $a);
            $message->fullmessageformat = FORMAT_PLAIN;
            $message->fullmessagehtml = get_string('alertbodyhtml', 'local_riskstream', $h);
            $message->smallmessage = get_string('alertsubject', 'local_riskstream', $a);
            $message->notification = 1;
            $message->contexturl = $a->url;
            $message->contexturlname = get_string('alertspage', 'local_riskstream');
            if (message_send($message)) {
                $sent++;
            }
        }
        return $sent;
    }
}
